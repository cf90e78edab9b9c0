/*
 * spool/msg.c - messages in flight (see msg.h).
 *
 * Threads: the owner of the message.  Parses nothing.  Every pointer field
 * is owned by the message and freed by sl_msg_free().
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "spool/msg.h"

struct sl_msg *
sl_msg_new(void)
{
	struct sl_msg *m = SL_NEW(m);
	m->magic = SL_MSG_MAGIC;
	m->sender = sl_strdup("");
	m->refs = 1;
	return m;
}

void
sl_msg_ref(struct sl_msg *m)
{
	SL_CHECK_OBJ(m, SL_MSG_MAGIC);
	__atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
}

void
sl_msg_unref(struct sl_msg *m)
{
	if (m == NULL)
		return;
	SL_CHECK_OBJ(m, SL_MSG_MAGIC);
	/* Release: the holders' writes (recipient status) happen before the free. */
	if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0)
		sl_msg_free(m);
}

void
sl_msg_clear_content(struct sl_msg *m)
{
	struct sl_msg_chunk *c = m->chunks;

	while (c != NULL) {
		struct sl_msg_chunk *next = c->next;

		sl_free(c);
		c = next;
	}
	m->chunks = m->tail = NULL;
	m->content_len = 0;
	sl_buf_reset(&m->head);
}

void
sl_msg_swap_out(struct sl_msg *m)
{
	uint64_t len = m->content_len;

	SL_ASSERT(!m->is_swapped);
	m->swapped_head_len = m->head.len;
	sl_msg_clear_content(m);
	sl_buf_free(&m->head);
	m->content_len = len;
	m->is_swapped = true;
}

int
sl_msg_swap_in(struct sl_msg *m, struct sl_msg *from)
{
	SL_ASSERT(m->is_swapped && !from->is_swapped);
	if (from->head.len != m->swapped_head_len || from->content_len != m->content_len)
		return -EIO;
	m->head = from->head;
	m->chunks = from->chunks;
	m->tail = from->tail;
	from->head = (struct sl_buf)SL_BUF_INIT;
	from->chunks = from->tail = NULL;
	from->content_len = 0;
	m->is_swapped = false;
	m->swapped_head_len = 0;
	return 0;
}

void
sl_msg_free(struct sl_msg *m)
{
	if (m == NULL)
		return;
	SL_CHECK_OBJ(m, SL_MSG_MAGIC);
	sl_msg_clear_content(m);
	sl_buf_free(&m->head);
	for (size_t i = 0; i < m->rcpt_cnt; i++)
		sl_free(m->rcpts[i].addr);
	sl_free(m->rcpts);
	for (size_t i = 0; i < m->context_cnt; i++) {
		sl_free(m->context[i].key);
		sl_free(m->context[i].val);
	}
	sl_free(m->context);
	sl_free(m->sender);
	sl_free(m->binding);
	sl_free(m->binding_group);
	sl_free(m->peer_ip);
	sl_free(m->helo);
	sl_free(m->protocol);
	m->magic = 0;
	sl_free(m);
}

void
sl_msg_set_str(char **field, const char *val)
{
	sl_free(*field);
	*field = val ? sl_strdup(val) : NULL;
}

void
sl_msg_set_sender(struct sl_msg *m, const char *addr)
{
	sl_msg_set_str(&m->sender, addr ? addr : "");
}

void
sl_msg_add_rcpt(struct sl_msg *m, const char *addr)
{
	struct sl_msg_rcpt *r;
	const char *at = strrchr(addr, '@');

	if (m->rcpt_cnt == m->rcpt_cap) {
		m->rcpt_cap = m->rcpt_cap ? m->rcpt_cap * 2 : 4;
		m->rcpts = sl_reallocarray(m->rcpts, m->rcpt_cap, sizeof(*m->rcpts));
	}
	r = &m->rcpts[m->rcpt_cnt++];
	r->addr = sl_strdup(addr);
	r->domain_off = (uint32_t)(at ? (size_t)(at - addr) + 1 : strlen(addr));
	r->status = SL_RCPT_PENDING;
}

const char *
sl_kv_get(const struct sl_msg_kv *kv, size_t cnt, const char *key)
{
	for (size_t i = 0; i < cnt; i++)
		if (strcmp(kv[i].key, key) == 0)
			return kv[i].val;
	return NULL;
}

void
sl_kv_set(struct sl_msg_kv **kv, size_t *cnt, const char *key, const char *val)
{
	for (size_t i = 0; i < *cnt; i++) {
		if (strcmp((*kv)[i].key, key) == 0) {
			sl_msg_set_str(&(*kv)[i].val, val);
			return;
		}
	}
	*kv = sl_reallocarray(*kv, *cnt + 1, sizeof(**kv));
	(*kv)[*cnt].key = sl_strdup(key);
	(*kv)[*cnt].val = sl_strdup(val);
	(*cnt)++;
}

void
sl_msg_add_context(struct sl_msg *m, const char *key, const char *val)
{
	sl_kv_set(&m->context, &m->context_cnt, key, val);
}

const char *
sl_msg_context_get(const struct sl_msg *m, const char *key)
{
	return sl_kv_get(m->context, m->context_cnt, key);
}

void
sl_msg_append(struct sl_msg *m, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		struct sl_msg_chunk *c = m->tail;
		size_t n;

		if (c == NULL || c->len == c->cap) {
			c = sl_malloc(sizeof(*c) + SL_MSG_CHUNK_LEN);
			c->next = NULL;
			c->len = 0;
			c->cap = SL_MSG_CHUNK_LEN;
			if (m->tail != NULL)
				m->tail->next = c;
			else
				m->chunks = c;
			m->tail = c;
		}
		n = c->cap - c->len < len ? c->cap - c->len : len;
		memcpy(c->data + c->len, p, n);
		c->len += n;
		m->content_len += n;
		p += n;
		len -= n;
	}
}

size_t
sl_msg_iov(const struct sl_msg *m, struct iovec *iov, size_t max)
{
	size_t n = 0;

	SL_ASSERT(!m->is_swapped);
	if (m->head.len > 0) {
		if (n < max) {
			iov[n].iov_base = m->head.data;
			iov[n].iov_len = m->head.len;
		}
		n++;
	}
	for (const struct sl_msg_chunk *c = m->chunks; c != NULL; c = c->next) {
		if (c->len == 0)
			continue;
		if (n < max) {
			iov[n].iov_base = (void *)c->data;
			iov[n].iov_len = c->len;
		}
		n++;
	}
	return n;
}
