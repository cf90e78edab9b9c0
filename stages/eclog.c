/*
 * stages/eclog.c - mainlog and rejectlog lines in Momentum's formats (see eclog.h).
 *
 * Threads: writers on any thread (they format into a stack buffer and queue
 * the line); sl_eclog_open on the config thread, publishing stream ids and
 * switches with relaxed atomics.  Formats caller strings; escapes them.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine/buf.h"
#include "engine/log.h"
#include "proto/bounce.h"
#include "stages/eclog.h"

static int eclog_mainlog = -1;
static int eclog_rejectlog = -1;
static int eclog_bouncelog = -1;
static int eclog_is_receptions = 1;
static int eclog_is_rejections = 1;
static int eclog_is_deliveries = 1;
static int eclog_is_transient = 1;
static int eclog_is_permanent = 1;

static int
eclog_stream(const struct sl_conf_snapshot *s, const struct sl_conf_block *b, enum sl_opt path_opt,
	     enum sl_opt mode_opt, const char *what)
{
	const union sl_conf_val *path = sl_conf_block_get(s, b, path_opt);
	const union sl_conf_val *mode = sl_conf_block_get(s, b, mode_opt);
	int id;

	if (path == NULL)
		return -1;
	id = sl_log_stream_open(path->s, mode ? (unsigned)mode->i : 0644);
	if (id < 0)
		sl_log_err("cannot open the %s %s: %s", what, path->s, strerror(-id));
	return id;
}

int
sl_eclog_open(const struct sl_conf_snapshot *s)
{
	size_t pos = 0;
	const struct sl_conf_block *b = sl_conf_block_next(s, "ec_logger", &pos);
	const union sl_conf_val *v;
	int main_id, reject_id;
	main_id = eclog_stream(s, b, SL_OPT_EC_LOGGER_MAINLOG, SL_OPT_EC_LOGGER_MAINLOG_MODE,
			       "mainlog");
	__atomic_store_n(&eclog_bouncelog,
			 eclog_stream(s, b, SL_OPT_EC_LOGGER_BOUNCELOG,
				      SL_OPT_EC_LOGGER_BOUNCELOG_MODE, "bouncelog"),
			 __ATOMIC_RELAXED);
	reject_id = eclog_stream(s, b, SL_OPT_EC_LOGGER_REJECTLOG, SL_OPT_EC_LOGGER_REJECTLOG_MODE,
				 "rejectlog");
	__atomic_store_n(&eclog_mainlog, main_id, __ATOMIC_RELAXED);
	__atomic_store_n(&eclog_rejectlog, reject_id, __ATOMIC_RELAXED);
	v = sl_conf_block_get(s, b, SL_OPT_EC_LOGGER_LOG_RECEPTIONS);
	__atomic_store_n(&eclog_is_receptions, v == NULL || v->b, __ATOMIC_RELAXED);
	v = sl_conf_block_get(s, b, SL_OPT_EC_LOGGER_LOG_REJECTIONS);
	__atomic_store_n(&eclog_is_rejections, v == NULL || v->b, __ATOMIC_RELAXED);
	v = sl_conf_block_get(s, b, SL_OPT_EC_LOGGER_LOG_DELIVERIES);
	__atomic_store_n(&eclog_is_deliveries, v == NULL || v->b, __ATOMIC_RELAXED);
	v = sl_conf_block_get(s, b, SL_OPT_EC_LOGGER_LOG_TRANSIENT_FAILURES);
	__atomic_store_n(&eclog_is_transient, v == NULL || v->b, __ATOMIC_RELAXED);
	v = sl_conf_block_get(s, b, SL_OPT_EC_LOGGER_LOG_PERMANENT_FAILURES);
	__atomic_store_n(&eclog_is_permanent, v == NULL || v->b, __ATOMIC_RELAXED);
	return main_id < 0 ? main_id : reject_id < 0 ? reject_id : 0;
}

void
sl_eclog_reception(const struct sl_msg *m, const char *conn_id)
{
	int id = __atomic_load_n(&eclog_mainlog, __ATOMIC_RELAXED);
	struct sl_buf b = SL_BUF_INIT;

	if (id < 0 || !__atomic_load_n(&eclog_is_receptions, __ATOMIC_RELAXED))
		return;
	for (size_t i = 0; i < m->rcpt_cnt; i++) {
		sl_buf_reset(&b);
		sl_buf_printf(&b, "%lld@%s@%s@", (long long)m->received, m->qid, m->qid);
		sl_log_field(&b, conn_id, strlen(conn_id));
		sl_buf_append(&b, "@R@", 3);
		sl_log_address(&b, m->rcpts[i].addr);
		sl_buf_append(&b, "@", 1);
		sl_log_address(&b, m->sender);
		sl_buf_append(&b, "@", 1);
		sl_log_field(&b, m->peer_ip ? m->peer_ip : "", m->peer_ip ? strlen(m->peer_ip) : 0);
		sl_buf_printf(&b, "@%" PRIu64 "@%s@", sl_msg_size(m),
			      m->protocol ? m->protocol : "esmtp");
		sl_log_field(&b, m->binding_group ? m->binding_group : "default",
			     strlen(m->binding_group ? m->binding_group : "default"));
		sl_buf_append(&b, "@", 1);
		sl_log_field(&b, m->binding ? m->binding : "default",
			     strlen(m->binding ? m->binding : "default"));
		sl_log_stream_write(id, b.data, b.len);
	}
	sl_buf_free(&b);
}

void
sl_eclog_outcome(const struct sl_msg *m, enum sl_eclog_outcome kind, const char *domain,
		 uint64_t bytes, unsigned stage, unsigned retries, const char *ip,
		 const char *response, time_t now)
{
	static const char letters[] = { 'D', 'T', 'P' };
	static int *const switches[] = { &eclog_is_deliveries, &eclog_is_transient,
					 &eclog_is_permanent };
	int id = __atomic_load_n(&eclog_mainlog, __ATOMIC_RELAXED);
	const char *group = m->binding_group ? m->binding_group : "default";
	const char *binding = m->binding ? m->binding : "default";
	double secs = now >= m->received ? (double)(now - m->received) : 0.0;
	struct sl_buf b = SL_BUF_INIT;

	if (id < 0 || !__atomic_load_n(switches[kind], __ATOMIC_RELAXED))
		return;
	sl_buf_printf(&b, "%lld@%s@%s@", (long long)now, m->qid, m->qid);
	sl_log_field(&b, m->conn_id, strlen(m->conn_id));
	sl_buf_printf(&b, "@%c@", letters[kind]);
	sl_log_field(&b, domain, strlen(domain));
	sl_buf_printf(&b, "@%" PRIu64 "@", bytes);
	sl_log_field(&b, group, strlen(group));
	sl_buf_append(&b, "@", 1);
	sl_log_field(&b, binding, strlen(binding));
	if (kind == SL_ECLOG_DELIVERED)
		sl_buf_printf(&b, "@%u@%.2f@", retries, secs);
	else
		sl_buf_printf(&b, "@%u@%u@%.2f@", stage, retries, secs);
	sl_log_field(&b, ip ? ip : "", ip ? strlen(ip) : 0);
	if (kind != SL_ECLOG_DELIVERED) {
		sl_buf_append(&b, "@", 1);
		sl_log_field(&b, response ? response : "", response ? strlen(response) : 0);
	}
	sl_log_stream_write(id, b.data, b.len);
	sl_buf_free(&b);
}

void
sl_eclog_bounce_line(const char *line, size_t len)
{
	int id = __atomic_load_n(&eclog_bouncelog, __ATOMIC_RELAXED);

	if (id >= 0)
		sl_log_stream_write(id, line, len);
}

void
sl_eclog_reject(const char *remote, const char *local, const char *conn_id, const char *phase,
		unsigned code, const char *module, const char *text)
{
	int id = __atomic_load_n(&eclog_rejectlog, __ATOMIC_RELAXED);
	char line[1024];
	int n;

	if (id < 0 || !__atomic_load_n(&eclog_is_rejections, __ATOMIC_RELAXED))
		return;
	n = snprintf(line, sizeof(line), "%lld: R=\"%s\" L=\"%s\" C=\"%s\" P=\"%s\" E=%u M=%s %s",
		     (long long)time(NULL), remote, local, conn_id, phase, code,
		     module ? module : "smtp", text);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 1;
	/* Client text may hold control bytes: one line per record. */
	for (int i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20)
			line[i] = '?';
	sl_log_stream_write(id, line, (size_t)n);
}

void
sl_eclog_heartbeat(void)
{
	int id = __atomic_load_n(&eclog_mainlog, __ATOMIC_RELAXED);
	char line[32];
	int n;

	if (id < 0)
		return;
	n = snprintf(line, sizeof(line), "%lld@@@@M", (long long)time(NULL));
	sl_log_stream_write(id, line, (size_t)n);
}

void
sl_eclog_config(uint64_t generation, const char *source)
{
	int id = __atomic_load_n(&eclog_mainlog, __ATOMIC_RELAXED);
	struct sl_buf b = SL_BUF_INIT;

	if (id < 0)
		return;
	sl_buf_printf(&b, "%lld@@@@C@%" PRIu64 "@", (long long)time(NULL), generation);
	sl_log_field(&b, source ? source : "", source ? strlen(source) : 0);
	sl_log_stream_write(id, b.data, b.len);
	sl_buf_free(&b);
}
