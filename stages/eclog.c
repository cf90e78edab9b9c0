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
static int eclog_acctlog = -1;
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
	__atomic_store_n(&eclog_acctlog,
			 eclog_stream(s, b, SL_OPT_EC_LOGGER_ACCTLOG, SL_OPT_EC_LOGGER_ACCTLOG_MODE,
				      "acctlog"),
			 __ATOMIC_RELAXED);
	v = sl_conf_block_get(s, b, SL_OPT_EC_LOGGER_LOG_ERRORS);
	sl_log_paniclog_set(v == NULL || v->b);
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

/* A rejectlog line past this is cut (a context variable holds client text). */
#define ECLOG_REJECT_MAX 8192

/* Client text may hold control bytes: one line per record. */
static void
eclog_reject_text(struct sl_buf *b, const char *s)
{
	for (; *s != '\0'; s++)
		sl_buf_append(b, (unsigned char)*s < 0x20 ? "?" : s, 1);
}

/*
 * A CTXCONN/CTXMESS value, as Momentum writes them: bare when it holds no
 * space, quote, comma, '=' or bracket, else in double quotes with '"' and
 * '\' escaped by a backslash.
 */
static void
eclog_reject_val(struct sl_buf *b, const char *v)
{
	if (v[strcspn(v, " \t\",=[]\\")] == '\0') {
		eclog_reject_text(b, v);
		return;
	}
	sl_buf_append(b, "\"", 1);
	for (const char *p = v; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			sl_buf_append(b, "\\", 1);
		sl_buf_append(b, (unsigned char)*p < 0x20 ? "?" : p, 1);
	}
	sl_buf_append(b, "\"", 1);
}

static void
eclog_reject_ctx(struct sl_buf *b, const char *name, const struct sl_msg_kv *kv, size_t cnt)
{
	sl_buf_printf(b, " %s=[", name);
	for (size_t i = 0; i < cnt; i++) {
		if (i > 0)
			sl_buf_append(b, ",", 1);
		eclog_reject_text(b, kv[i].key);
		sl_buf_append(b, "=", 1);
		eclog_reject_val(b, kv[i].val ? kv[i].val : "");
	}
	sl_buf_append(b, "]", 1);
}

void
sl_eclog_reject_ctx(const char *remote, const char *local, const char *conn_id, const char *phase,
		    unsigned code, const char *module, const char *text,
		    const struct sl_eclog_ctx *ctx)
{
	int id = __atomic_load_n(&eclog_rejectlog, __ATOMIC_RELAXED);
	struct sl_buf b = SL_BUF_INIT;

	if (id < 0 || !__atomic_load_n(&eclog_is_rejections, __ATOMIC_RELAXED))
		return;
	/* PATH and PATH_GRP: sluice has no pathways; Momentum names its own "default". */
	sl_buf_printf(&b, "%lld: R=\"", (long long)time(NULL));
	eclog_reject_text(&b, remote);
	sl_buf_puts(&b, "\" L=\"");
	eclog_reject_text(&b, local);
	sl_buf_puts(&b, "\" C=\"");
	eclog_reject_text(&b, conn_id);
	sl_buf_puts(&b, "\" PATH=\"default\" PATH_GRP=\"default\" P=\"");
	eclog_reject_text(&b, phase);
	sl_buf_printf(&b, "\" E=%u M=", code);
	eclog_reject_text(&b, module ? module : "smtp");
	eclog_reject_ctx(&b, "CTXCONN", ctx ? ctx->conn : NULL, ctx ? ctx->conn_cnt : 0);
	eclog_reject_ctx(&b, "CTXMESS", ctx ? ctx->mess : NULL, ctx ? ctx->mess_cnt : 0);
	sl_buf_append(&b, " ", 1);
	eclog_reject_text(&b, text);
	sl_log_stream_write(id, b.data, b.len > ECLOG_REJECT_MAX ? ECLOG_REJECT_MAX : b.len);
	sl_buf_free(&b);
}

void
sl_eclog_reject(const char *remote, const char *local, const char *conn_id, const char *phase,
		unsigned code, const char *module, const char *text)
{
	sl_eclog_reject_ctx(remote, local, conn_id, phase, code, module, text, NULL);
}

/* Momentum's heartbeat records: "time@@@@M" in the mainlog, "time@@@@M1" in the bouncelog. */
void
sl_eclog_heartbeat(void)
{
	int main_id = __atomic_load_n(&eclog_mainlog, __ATOMIC_RELAXED);
	int bounce_id = __atomic_load_n(&eclog_bouncelog, __ATOMIC_RELAXED);
	char line[32];
	int n = snprintf(line, sizeof(line), "%lld@@@@M", (long long)time(NULL));

	if (main_id >= 0)
		sl_log_stream_write(main_id, line, (size_t)n);
	if (bounce_id >= 0) {
		line[n++] = '1';
		sl_log_stream_write(bounce_id, line, (size_t)n);
	}
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

/* The fields every acctlog record starts with: time@kind@endpoint@peer@user@result. */
static void
eclog_acct_head(struct sl_buf *b, char kind, const char *endpoint, const char *peer,
		const char *user, int result)
{
	sl_buf_printf(b, "%lld@%c@", (long long)time(NULL), kind);
	sl_log_field(b, endpoint ? endpoint : "", endpoint ? strlen(endpoint) : 0);
	sl_buf_append(b, "@", 1);
	sl_log_field(b, peer ? peer : "", peer ? strlen(peer) : 0);
	sl_buf_append(b, "@", 1);
	sl_log_field(b, user ? user : "", user ? strlen(user) : 0);
	sl_buf_printf(b, "@%d", result);
}

void
sl_eclog_authn(const char *endpoint, const char *peer, const char *user, int result)
{
	int id = __atomic_load_n(&eclog_acctlog, __ATOMIC_RELAXED);
	struct sl_buf b = SL_BUF_INIT;

	if (id < 0)
		return;
	eclog_acct_head(&b, 'N', endpoint, peer, user, result);
	sl_log_stream_write(id, b.data, b.len);
	sl_buf_free(&b);
}

void
sl_eclog_authz(const char *endpoint, const char *peer, const char *user, int result,
	       const char *command, const char *role)
{
	int id = __atomic_load_n(&eclog_acctlog, __ATOMIC_RELAXED);
	struct sl_buf b = SL_BUF_INIT;

	if (id < 0)
		return;
	eclog_acct_head(&b, 'Z', endpoint, peer, user, result);
	sl_buf_append(&b, "@", 1);
	sl_log_field(&b, command ? command : "", command ? strlen(command) : 0);
	if (role != NULL) {
		sl_buf_append(&b, "@", 1);
		sl_log_field(&b, role, strlen(role));
	}
	sl_log_stream_write(id, b.data, b.len);
	sl_buf_free(&b);
}
