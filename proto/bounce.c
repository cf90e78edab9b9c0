/*
 * proto/bounce.c - bounce classification, override rules and the bouncelog line (see bounce.h).
 *
 * The built-in table below is the classifier's knowledge: one row per rule,
 * first match wins, written from the RFC 3463 registry and from replies of
 * Gmail, Outlook/Office 365, Yahoo, Postfix, Exim and Sendmail.  Texts are
 * compared lower-cased, against at most SL_BOUNCE_MAX_TEXT octets.
 *
 * Threads: a rule set is read-only once built; the rest is reentrant.
 * Parses untrusted input (reply texts, override files), every length bounded.
 * Ownership: a rule set owns copies of everything it keeps.
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "proto/bounce.h"

/* ---------------------------------------------------------------- names */

static const struct {
	unsigned code;
	const char *name;
	const char *desc;
} bounce_classes[] = {
#define BOUNCE_ROW(id, code, name, desc) { code, name, desc },
	SL_BOUNCE_CLASSES(BOUNCE_ROW)
#undef BOUNCE_ROW
};

static const char *const bounce_stages[] = {
#define BOUNCE_STAGE_ROW(id, num, desc) [num] = desc,
	SL_BOUNCE_STAGES(BOUNCE_STAGE_ROW)
#undef BOUNCE_STAGE_ROW
};

const char *
sl_bounce_class_name(unsigned code)
{
	for (size_t i = 0; i < SL_ARRAY_LEN(bounce_classes); i++)
		if (bounce_classes[i].code == code)
			return bounce_classes[i].name;
	return NULL;
}

const char *
sl_bounce_class_desc(unsigned code)
{
	for (size_t i = 0; i < SL_ARRAY_LEN(bounce_classes); i++)
		if (bounce_classes[i].code == code)
			return bounce_classes[i].desc;
	return NULL;
}

const char *
sl_bounce_stage_name(unsigned stage)
{
	return stage < SL_ARRAY_LEN(bounce_stages) ? bounce_stages[stage] : NULL;
}

/* ---------------------------------------------------------------- status codes */

/* An RFC 3463 code, class.subject.detail; class 0 when absent. */
struct bounce_status {
	int cls;
	int subject;
	int detail;
};

/* 1 to 3 digits; returns the octets used, 0 when none. */
static size_t
bounce_number(const char *s, size_t len, int *v)
{
	size_t i = 0;

	*v = 0;
	while (i < len && i < 3 && isdigit((unsigned char)s[i]))
		*v = *v * 10 + (s[i++] - '0');
	if (i < len && isdigit((unsigned char)s[i]))
		return 0; /* four digits: not a status code */
	return i;
}

/*
 * Parse "c.s.d" at the start of s (RFC 3463 §2: class 2, 4 or 5, subject and
 * detail 1-3 digits), followed by the end, a space, a tab or ';'.  Returns the
 * octets used, 0 if none is there.
 */
static size_t
bounce_parse_status(const char *s, size_t len, struct bounce_status *st)
{
	size_t i, n;

	if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	i = 2;
	if ((n = bounce_number(s + i, len - i, &st->subject)) == 0)
		return 0;
	i += n;
	if (i >= len || s[i] != '.')
		return 0;
	i++;
	if ((n = bounce_number(s + i, len - i, &st->detail)) == 0)
		return 0;
	i += n;
	if (i < len && s[i] != ' ' && s[i] != '\t' && s[i] != ';')
		return 0;
	st->cls = s[0] - '0';
	return i;
}

/* The reply code and status at the start of a reply text ("550-5.1.1 ..."). */
static void
bounce_parse_reply(const char *s, size_t len, unsigned *code, struct bounce_status *st)
{
	size_t i = 0;

	*code = 0;
	memset(st, 0, sizeof(*st));
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (len - i < 3 || !isdigit((unsigned char)s[i]) || !isdigit((unsigned char)s[i + 1]) ||
	    !isdigit((unsigned char)s[i + 2]))
		return;
	if (len - i > 3 && s[i + 3] != ' ' && s[i + 3] != '-' && s[i + 3] != '\t')
		return;
	*code = (unsigned)((s[i] - '0') * 100 + (s[i + 1] - '0') * 10 + (s[i + 2] - '0'));
	i += 4;
	if (i < len && bounce_parse_status(s + i, len - i, st) == 0)
		memset(st, 0, sizeof(*st));
}

/* ---------------------------------------------------------------- the built-in table */

#define ANY (-1)

/*
 * A rule.  sev: 0 any, else the failure's class digit (reply code / 100,
 * or the status class without a code).  A status pattern matches when the
 * reply carries an RFC 3463 code equal in every field that is not ANY.
 * needle: a lower-case substring of the text.  Every given part must match.
 */
struct bounce_row {
	signed char sev;
	bool has_status;
	signed char st_cls;
	short st_subject;
	short st_detail;
	const char *needle;
	unsigned char bounce_class;
};

#define ST(c, s, d) .has_status = true, .st_cls = (c), .st_subject = (s), .st_detail = (d)
#define TEXT(t)     .needle = (t)

static const struct bounce_row bounce_table[] = {
	/*
	 * 1. Wording that is decisive whatever code comes with it.  Exim's
	 * sender verification says "Unrouteable address" about the sender;
	 * Office 365 answers an unknown recipient (directory-based edge
	 * blocking) with 550 5.4.1 "Recipient address rejected: Access
	 * denied"; a relay refusal may come with any code.
	 */
	{ TEXT("sender verify failed"), .bounce_class = SL_BOUNCE_MAIL_BLOCK },
	{ TEXT("recipient address rejected: access denied"),
	  .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ TEXT("relay access denied"), .bounce_class = SL_BOUNCE_RELAY_DENIED },
	{ TEXT("relaying denied"), .bounce_class = SL_BOUNCE_RELAY_DENIED },
	{ TEXT("relay denied"), .bounce_class = SL_BOUNCE_RELAY_DENIED },
	{ TEXT("relay not permitted"), .bounce_class = SL_BOUNCE_RELAY_DENIED },
	{ TEXT("relaying not permitted"), .bounce_class = SL_BOUNCE_RELAY_DENIED },
	{ TEXT("relay not allowed"), .bounce_class = SL_BOUNCE_RELAY_DENIED },
	{ TEXT("relaying not allowed"), .bounce_class = SL_BOUNCE_RELAY_DENIED },
	{ TEXT("unable to relay"), .bounce_class = SL_BOUNCE_RELAY_DENIED },
	{ TEXT("not allowed to relay"), .bounce_class = SL_BOUNCE_RELAY_DENIED },
	{ TEXT("we do not relay"), .bounce_class = SL_BOUNCE_RELAY_DENIED },

	/* 2. RFC 3463 codes that say exactly what happened. */
	{ ST(ANY, 1, 2), .bounce_class = SL_BOUNCE_DNS_FAILURE }, /* bad destination system */
	{ ST(ANY, 4, 3), .bounce_class = SL_BOUNCE_DNS_FAILURE }, /* routing server failure */
	{ ST(ANY, 4, 4), .bounce_class = SL_BOUNCE_DNS_FAILURE }, /* unable to route */
	{ ST(ANY, 1, 7), .bounce_class = SL_BOUNCE_MAIL_BLOCK },  /* bad sender mailbox */
	{ ST(ANY, 1, 8), .bounce_class = SL_BOUNCE_MAIL_BLOCK },  /* bad sender system */
	{ ST(ANY, 1, ANY), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT }, /* incl. 5.1.10 null MX */
	{ ST(5, 2, 1), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT }, /* mailbox disabled; Gmail's
									 4.2.1 is a rate limit */
	{ ST(ANY, 2, 2), .bounce_class = SL_BOUNCE_MAILBOX_FULL },
	{ ST(ANY, 2, 3), .bounce_class = SL_BOUNCE_TOO_LARGE }, /* over the mailbox's limit */
	{ ST(ANY, 3, 4), .bounce_class = SL_BOUNCE_TOO_LARGE },
	{ ST(ANY, 4, 7), .bounce_class = SL_BOUNCE_TIMEOUT }, /* delivery time expired */
	{ ST(ANY, 4, 6), .bounce_class = SL_BOUNCE_GENERIC }, /* routing loop */

	/*
	 * 3. Wording.  Spam verdicts on the content before blocks of the
	 * source (Gmail's "likely unsolicited mail" vs "unusual rate of
	 * unsolicited mail ... from your IP"); authentication failures before
	 * the word "spam", which Gmail's 5.7.26 text also contains.
	 */
	{ TEXT("likely unsolicited mail"), .bounce_class = SL_BOUNCE_SPAM_CONTENT },
	{ TEXT("detected as spam"), .bounce_class = SL_BOUNCE_SPAM_CONTENT },
	{ TEXT("identified as spam"), .bounce_class = SL_BOUNCE_SPAM_CONTENT },
	{ TEXT("rejected as spam"), .bounce_class = SL_BOUNCE_SPAM_CONTENT },
	{ TEXT("considered spam"), .bounce_class = SL_BOUNCE_SPAM_CONTENT },
	{ TEXT("classified as spam"), .bounce_class = SL_BOUNCE_SPAM_CONTENT },
	{ TEXT("looks like spam"), .bounce_class = SL_BOUNCE_SPAM_CONTENT },
	{ TEXT("spam message"), .bounce_class = SL_BOUNCE_SPAM_CONTENT },
	{ TEXT("spam content"), .bounce_class = SL_BOUNCE_SPAM_CONTENT },
	{ TEXT("content rejected"), .bounce_class = SL_BOUNCE_SPAM_CONTENT },
	{ TEXT("unauthenticated"), .bounce_class = SL_BOUNCE_MAIL_BLOCK },
	{ TEXT("dmarc"), .bounce_class = SL_BOUNCE_MAIL_BLOCK },
	{ TEXT("block list"), .bounce_class = SL_BOUNCE_SPAM_BLOCK },
	{ TEXT("blocklist"), .bounce_class = SL_BOUNCE_SPAM_BLOCK },
	{ TEXT("blacklist"), .bounce_class = SL_BOUNCE_SPAM_BLOCK },
	{ TEXT("blocked using"), .bounce_class = SL_BOUNCE_SPAM_BLOCK },
	{ TEXT("listed in"), .bounce_class = SL_BOUNCE_SPAM_BLOCK },
	{ TEXT("listed on"), .bounce_class = SL_BOUNCE_SPAM_BLOCK },
	{ TEXT("listed at"), .bounce_class = SL_BOUNCE_SPAM_BLOCK },
	{ TEXT("spamhaus"), .bounce_class = SL_BOUNCE_SPAM_BLOCK },
	{ TEXT("spamcop"), .bounce_class = SL_BOUNCE_SPAM_BLOCK },
	{ TEXT("sorbs"), .bounce_class = SL_BOUNCE_SPAM_BLOCK },
	{ TEXT("barracuda"), .bounce_class = SL_BOUNCE_SPAM_BLOCK },
	{ TEXT("dnsbl"), .bounce_class = SL_BOUNCE_SPAM_BLOCK },
	{ TEXT("banned sending ip"), .bounce_class = SL_BOUNCE_SPAM_BLOCK },
	{ TEXT("reputation"), .bounce_class = SL_BOUNCE_SPAM_BLOCK },
	{ TEXT("unsolicited mail"), .bounce_class = SL_BOUNCE_SPAM_BLOCK },
	{ TEXT("spam"), .bounce_class = SL_BOUNCE_SPAM_BLOCK },
	/* Mailbox size before message size ("mailbox size limit exceeded"). */
	{ TEXT("mailbox full"), .bounce_class = SL_BOUNCE_MAILBOX_FULL },
	{ TEXT("mailbox is full"), .bounce_class = SL_BOUNCE_MAILBOX_FULL },
	{ TEXT("mailbox size limit"), .bounce_class = SL_BOUNCE_MAILBOX_FULL },
	{ TEXT("over quota"), .bounce_class = SL_BOUNCE_MAILBOX_FULL },
	{ TEXT("overquota"), .bounce_class = SL_BOUNCE_MAILBOX_FULL },
	{ TEXT("quota exceeded"), .bounce_class = SL_BOUNCE_MAILBOX_FULL },
	{ TEXT("exceeded quota"), .bounce_class = SL_BOUNCE_MAILBOX_FULL },
	{ TEXT("exceeded storage allocation"), .bounce_class = SL_BOUNCE_MAILBOX_FULL },
	{ TEXT("size exceeds"), .bounce_class = SL_BOUNCE_TOO_LARGE },
	{ TEXT("message too large"), .bounce_class = SL_BOUNCE_TOO_LARGE },
	{ TEXT("message too big"), .bounce_class = SL_BOUNCE_TOO_LARGE },
	{ TEXT("message is too large"), .bounce_class = SL_BOUNCE_TOO_LARGE },
	{ TEXT("message size limit"), .bounce_class = SL_BOUNCE_TOO_LARGE },
	{ TEXT("attachment"), .bounce_class = SL_BOUNCE_PROHIBITED_ATTACHMENT },
	{ TEXT("file extension"), .bounce_class = SL_BOUNCE_PROHIBITED_ATTACHMENT },
	/* The domain before the mailbox ("domain does not exist"). */
	{ TEXT("host or domain name not found"), .bounce_class = SL_BOUNCE_DNS_FAILURE },
	{ TEXT("domain not found"), .bounce_class = SL_BOUNCE_DNS_FAILURE },
	{ TEXT("domain does not exist"), .bounce_class = SL_BOUNCE_DNS_FAILURE },
	{ TEXT("unrouteable mail domain"), .bounce_class = SL_BOUNCE_DNS_FAILURE },
	{ TEXT("host not found"), .bounce_class = SL_BOUNCE_DNS_FAILURE },
	{ TEXT("host unknown"), .bounce_class = SL_BOUNCE_DNS_FAILURE },
	{ TEXT("name service error"), .bounce_class = SL_BOUNCE_DNS_FAILURE },
	{ TEXT("no mx record"), .bounce_class = SL_BOUNCE_DNS_FAILURE },
	{ TEXT("nxdomain"), .bounce_class = SL_BOUNCE_DNS_FAILURE },
	{ TEXT("user unknown"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ TEXT("unknown user"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ TEXT("no such user"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ TEXT("no such recipient"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ TEXT("no such mailbox"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ TEXT("unknown recipient"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ TEXT("recipient unknown"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ TEXT("invalid recipient"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ TEXT("recipient not found"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ TEXT("mailbox not found"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ TEXT("unknown local part"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ TEXT("unrouteable address"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ TEXT("doesn't have a"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT }, /* Yahoo */
	{ TEXT("does not exist"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ TEXT("mailbox is disabled"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ TEXT("account disabled"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ TEXT("account has been disabled"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ .sev = 5, TEXT("mailbox unavailable"), .bounce_class = SL_BOUNCE_INVALID_RECIPIENT },
	{ TEXT("timed out"), .bounce_class = SL_BOUNCE_TIMEOUT },
	{ TEXT("timeout"), .bounce_class = SL_BOUNCE_TIMEOUT },
	{ TEXT("mail loop"), .bounce_class = SL_BOUNCE_GENERIC },
	{ TEXT("too many hops"), .bounce_class = SL_BOUNCE_GENERIC },
	{ TEXT("loop detected"), .bounce_class = SL_BOUNCE_GENERIC },
	{ TEXT("administrative prohibition"), .bounce_class = SL_BOUNCE_MAIL_BLOCK },
	{ TEXT("access denied"), .bounce_class = SL_BOUNCE_MAIL_BLOCK },
	{ TEXT("not authorized"), .bounce_class = SL_BOUNCE_MAIL_BLOCK },
	{ TEXT("policy"), .bounce_class = SL_BOUNCE_MAIL_BLOCK },
	{ TEXT("blocked"), .bounce_class = SL_BOUNCE_MAIL_BLOCK },

	/* 4. The security and policy codes (RFC 3463 §3.8) nothing above explained. */
	{ ST(ANY, 7, 1), .bounce_class = SL_BOUNCE_MAIL_BLOCK },
	{ .sev = 5, ST(5, 7, ANY), .bounce_class = SL_BOUNCE_MAIL_BLOCK },
};

/* Words of out-of-band notices only (checked before the table for MDNs). */
static const struct {
	const char *needle;
	unsigned bounce_class;
} bounce_mdn_words[] = {
	{ "challenge-response", SL_BOUNCE_CHALLENGE_RESPONSE },
	{ "verify that you are", SL_BOUNCE_CHALLENGE_RESPONSE },
	{ "sender verification", SL_BOUNCE_CHALLENGE_RESPONSE },
	{ "approved senders", SL_BOUNCE_CHALLENGE_RESPONSE },
	{ "spamarrest", SL_BOUNCE_CHALLENGE_RESPONSE },
	{ "boxbe", SL_BOUNCE_CHALLENGE_RESPONSE },
	{ "out of office", SL_BOUNCE_AUTO_REPLY },
	{ "out of the office", SL_BOUNCE_AUTO_REPLY },
	{ "auto-reply", SL_BOUNCE_AUTO_REPLY },
	{ "autoreply", SL_BOUNCE_AUTO_REPLY },
	{ "auto reply", SL_BOUNCE_AUTO_REPLY },
	{ "automatic reply", SL_BOUNCE_AUTO_REPLY },
	{ "vacation", SL_BOUNCE_AUTO_REPLY },
	{ "unsubscribe", SL_BOUNCE_UNSUBSCRIBE }, /* before its substring "subscribe" */
	{ "subscribe", SL_BOUNCE_SUBSCRIBE },
	{ "delivery has been delayed", SL_BOUNCE_TRANSIENT },
	{ "delivery delayed", SL_BOUNCE_TRANSIENT },
	{ "action: delayed", SL_BOUNCE_TRANSIENT },
	{ "will retry", SL_BOUNCE_TRANSIENT },
	{ "still trying", SL_BOUNCE_TRANSIENT },
};

/* ---------------------------------------------------------------- override rules */

struct bounce_rule {
	enum sl_bounce_rules_kind kind;
	char *domain;  /* owned, lower case; NULL: every domain */
	char *pattern; /* owned, lower case, '|' wildcards */
	size_t pattern_len;
	unsigned code;
	unsigned line;
	const char *file; /* borrowed from files[] */
};

struct bounce_custom {
	unsigned code;
	char *desc; /* owned */
};

struct sl_bounce_rules {
	struct bounce_rule *rules; /* owned array */
	size_t rule_cnt;
	size_t rule_cap;
	char **files; /* owned names */
	size_t file_cnt;
	struct bounce_custom *classes; /* owned array */
	size_t class_cnt;
};

struct sl_bounce_rules *
sl_bounce_rules_new(void)
{
	struct sl_bounce_rules *r = NULL;

	return SL_NEW(r);
}

static void
bounce_rule_free(struct bounce_rule *rule)
{
	sl_free(rule->domain);
	sl_free(rule->pattern);
}

void
sl_bounce_rules_free(struct sl_bounce_rules *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->rule_cnt; i++)
		bounce_rule_free(&r->rules[i]);
	sl_free(r->rules);
	for (size_t i = 0; i < r->file_cnt; i++)
		sl_free(r->files[i]);
	sl_free(r->files);
	for (size_t i = 0; i < r->class_cnt; i++)
		sl_free(r->classes[i].desc);
	sl_free(r->classes);
	sl_free(r);
}

size_t
sl_bounce_rules_count(const struct sl_bounce_rules *r)
{
	return r ? r->rule_cnt : 0;
}

static const struct bounce_custom *
bounce_custom_find(const struct sl_bounce_rules *r, unsigned code)
{
	for (size_t i = 0; r != NULL && i < r->class_cnt; i++)
		if (r->classes[i].code == code)
			return &r->classes[i];
	return NULL;
}

int
sl_bounce_rules_add_class(struct sl_bounce_rules *r, unsigned code, const char *desc)
{
	size_t len;

	SL_ASSERT(r != NULL);
	if (code < 1 || code > 99 || desc == NULL || (len = strlen(desc)) == 0 || len > 255)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)desc[i] < 0x20 || desc[i] == 0x7f)
			return -EINVAL;
	if (sl_bounce_class_name(code) != NULL || bounce_custom_find(r, code) != NULL)
		return -EEXIST;
	r->classes = sl_reallocarray(r->classes, r->class_cnt + 1, sizeof(*r->classes));
	r->classes[r->class_cnt].code = code;
	r->classes[r->class_cnt].desc = sl_strdup(desc);
	r->class_cnt++;
	return 0;
}

const char *
sl_bounce_rules_class_name(const struct sl_bounce_rules *r, unsigned code)
{
	const struct bounce_custom *c = bounce_custom_find(r, code);

	return c != NULL ? c->desc : sl_bounce_class_name(code);
}

static void bounce_error(struct sl_bounce_rules_error *err, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
bounce_error(struct sl_bounce_rules_error *err, unsigned line, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	err->line = line;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

/* [s, e) without spaces and tabs at either end. */
static void
bounce_trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

static char *
bounce_lower_dup(const char *s, size_t len)
{
	char *d = sl_strndup(s, len);

	for (size_t i = 0; i < len; i++)
		d[i] = (char)tolower((unsigned char)d[i]);
	return d;
}

/* Parse one non-blank, non-comment line into `rule`; 0 or -EINVAL with err set. */
static int
bounce_parse_line(const struct sl_bounce_rules *r, enum sl_bounce_rules_kind kind, const char *s,
		  const char *e, unsigned line, struct bounce_rule *rule,
		  struct sl_bounce_rules_error *err)
{
	const char *dom_s = NULL, *dom_e = NULL, *code_s, *code_e, *comma;
	unsigned code = 0;

	if (kind == SL_BOUNCE_RULES_SMTP) {
		comma = memchr(s, ',', (size_t)(e - s));
		if (comma == NULL) {
			bounce_error(err, line, "expected domain,bounce_code,rule");
			return -EINVAL;
		}
		dom_s = s;
		dom_e = comma;
		bounce_trim(&dom_s, &dom_e);
		for (const char *p = dom_s; p < dom_e; p++) {
			if ((unsigned char)*p <= ' ' || *p == 0x7f) {
				bounce_error(err, line,
					     "the domain \"%.*s\" contains a space or a "
					     "control character",
					     (int)(dom_e - dom_s), dom_s);
				return -EINVAL;
			}
		}
		s = comma + 1;
	}
	comma = memchr(s, ',', (size_t)(e - s));
	if (comma == NULL) {
		bounce_error(err, line,
			     kind == SL_BOUNCE_RULES_SMTP ? "expected domain,bounce_code,rule"
							  : "expected bounce_code,rule");
		return -EINVAL;
	}
	code_s = s;
	code_e = comma;
	bounce_trim(&code_s, &code_e);
	if (code_s == code_e || code_e - code_s > 3) {
		bounce_error(err, line, "bounce code \"%.*s\" is not a number from 1 to 999",
			     (int)(code_e - code_s > 40 ? 40 : code_e - code_s), code_s);
		return -EINVAL;
	}
	for (const char *p = code_s; p < code_e; p++) {
		if (!isdigit((unsigned char)*p)) {
			bounce_error(err, line, "bounce code \"%.*s\" is not a number",
				     (int)(code_e - code_s), code_s);
			return -EINVAL;
		}
		code = code * 10 + (unsigned)(*p - '0');
	}
	if (sl_bounce_class_name(code) == NULL && bounce_custom_find(r, code) == NULL) {
		bounce_error(err, line,
			     "bounce code %u is neither a built-in class nor one of "
			     "custom_classes",
			     code);
		return -EINVAL;
	}
	s = comma + 1;
	bounce_trim(&s, &e);
	if (s == e) {
		bounce_error(err, line, "the rule is empty");
		return -EINVAL;
	}
	memset(rule, 0, sizeof(*rule));
	rule->kind = kind;
	rule->code = code;
	rule->line = line;
	if (dom_s != NULL && dom_s < dom_e)
		rule->domain = bounce_lower_dup(dom_s, (size_t)(dom_e - dom_s));
	rule->pattern_len = (size_t)(e - s);
	rule->pattern = bounce_lower_dup(s, rule->pattern_len);
	return 0;
}

int
sl_bounce_rules_parse(struct sl_bounce_rules *r, enum sl_bounce_rules_kind kind, const char *file,
		      const char *text, size_t len, struct sl_bounce_rules_error *err)
{
	size_t start_cnt, pos = 0;
	unsigned line = 0;
	const char *fname;
	int rc = 0;

	SL_ASSERT(r != NULL && (text != NULL || len == 0));
	start_cnt = r->rule_cnt;
	r->files = sl_reallocarray(r->files, r->file_cnt + 1, sizeof(*r->files));
	fname = r->files[r->file_cnt++] = sl_strdup(file ? file : "");
	while (pos < len) {
		const char *s = text + pos, *nl = memchr(s, '\n', len - pos);
		const char *e = nl ? nl : text + len;
		struct bounce_rule rule;

		pos = (size_t)(e - text) + (nl ? 1 : 0);
		line++;
		if (e > s && e[-1] == '\r')
			e--;
		if ((size_t)(e - s) > SL_BOUNCE_MAX_RULE_LINE) {
			bounce_error(err, line, "line longer than %d octets",
				     SL_BOUNCE_MAX_RULE_LINE);
			rc = -EINVAL;
			goto fail_rollback;
		}
		if (memchr(s, '\0', (size_t)(e - s)) != NULL || memchr(s, '\r', (size_t)(e - s))) {
			bounce_error(err, line, "NUL or CR inside the line");
			rc = -EINVAL;
			goto fail_rollback;
		}
		bounce_trim(&s, &e);
		if (s == e || *s == '#')
			continue;
		if (r->rule_cnt >= SL_BOUNCE_MAX_RULES) {
			bounce_error(err, line, "more than %d rules", SL_BOUNCE_MAX_RULES);
			rc = -E2BIG;
			goto fail_rollback;
		}
		if ((rc = bounce_parse_line(r, kind, s, e, line, &rule, err)) < 0)
			goto fail_rollback;
		rule.file = fname;
		if (r->rule_cnt == r->rule_cap) {
			r->rule_cap = r->rule_cap ? 2 * r->rule_cap : 16;
			r->rules = sl_reallocarray(r->rules, r->rule_cap, sizeof(*r->rules));
		}
		r->rules[r->rule_cnt++] = rule;
	}
	return (int)(r->rule_cnt - start_cnt);

fail_rollback:
	while (r->rule_cnt > start_cnt)
		bounce_rule_free(&r->rules[--r->rule_cnt]);
	sl_free(r->files[--r->file_cnt]);
	return rc;
}

/* ---------------------------------------------------------------- matching */

/* The lower-cased, bounded text classified. */
struct bounce_text {
	char s[SL_BOUNCE_MAX_TEXT];
	size_t len;
};

static void
bounce_text_set(struct bounce_text *t, const char *s)
{
	t->len = 0;
	if (s == NULL)
		return;
	while (t->len < sizeof(t->s) && s[t->len] != '\0') {
		t->s[t->len] = (char)tolower((unsigned char)s[t->len]);
		t->len++;
	}
}

static bool
bounce_has(const struct bounce_text *t, const char *needle)
{
	return memmem(t->s, t->len, needle, strlen(needle)) != NULL;
}

/* Does a '|'-wildcard pattern occur in the text?  Leftmost matching of each
 * piece in turn is exact for patterns whose only wildcard is "any run". */
static bool
bounce_glob(const struct bounce_text *t, const char *pat, size_t pat_len)
{
	size_t pos = 0, i = 0;

	while (i <= pat_len) {
		const char *bar = memchr(pat + i, '|', pat_len - i);
		size_t piece = (bar ? (size_t)(bar - pat) : pat_len) - i;

		if (piece > 0) {
			const char *hit = memmem(t->s + pos, t->len - pos, pat + i, piece);

			if (hit == NULL)
				return false;
			pos = (size_t)(hit - t->s) + piece;
		}
		i += piece + 1;
	}
	return true;
}

/* Overrides of `kind`: those for `domain` first, then the global ones. */
static bool
bounce_override(const struct sl_bounce_rules *r, enum sl_bounce_rules_kind kind, const char *domain,
		const struct bounce_text *t, unsigned *code, struct sl_bounce_why *why)
{
	for (int pass = 0; r != NULL && pass < 2; pass++) {
		if (pass == 0 && (domain == NULL || *domain == '\0'))
			continue;
		for (size_t i = 0; i < r->rule_cnt; i++) {
			const struct bounce_rule *rule = &r->rules[i];

			if (rule->kind != kind || (pass == 1) != (rule->domain == NULL))
				continue;
			if (pass == 0 && strcasecmp(rule->domain, domain) != 0)
				continue;
			if (!bounce_glob(t, rule->pattern, rule->pattern_len))
				continue;
			*code = rule->code;
			why->source = SL_BOUNCE_SRC_OVERRIDE;
			why->line = rule->line;
			why->file = rule->file;
			why->is_domain_rule = pass == 0;
			return true;
		}
	}
	return false;
}

static bool
bounce_row_matches(const struct bounce_row *row, int sev, const struct bounce_status *st,
		   const struct bounce_text *t)
{
	if (row->sev != 0 && row->sev != sev)
		return false;
	if (row->has_status) {
		if (st->cls == 0 || (row->st_cls != ANY && row->st_cls != st->cls) ||
		    (row->st_subject != ANY && row->st_subject != st->subject) ||
		    (row->st_detail != ANY && row->st_detail != st->detail))
			return false;
	}
	return row->needle == NULL || bounce_has(t, row->needle);
}

static bool
bounce_table_match(int sev, const struct bounce_status *st, const struct bounce_text *t,
		   unsigned *code, struct sl_bounce_why *why)
{
	for (size_t i = 0; i < SL_ARRAY_LEN(bounce_table); i++) {
		if (bounce_row_matches(&bounce_table[i], sev, st, t)) {
			*code = bounce_table[i].bounce_class;
			why->source = SL_BOUNCE_SRC_TABLE;
			why->line = (unsigned)i + 1;
			return true;
		}
	}
	return false;
}

unsigned
sl_bounce_classify(const struct sl_bounce_rules *r, const struct sl_bounce_reply *in,
		   struct sl_bounce_why *why)
{
	struct sl_bounce_why dummy;
	struct bounce_status st, st_text;
	struct bounce_text t;
	unsigned code, reply_code;
	int sev;

	SL_ASSERT(in != NULL);
	if (why == NULL)
		why = &dummy;
	memset(why, 0, sizeof(*why));
	bounce_text_set(&t, in->text);
	bounce_parse_reply(t.s, t.len, &reply_code, &st_text);
	if (in->code != 0)
		reply_code = in->code;
	st = st_text;
	if (in->enhanced != NULL) {
		memset(&st, 0, sizeof(st));
		bounce_parse_status(in->enhanced, strlen(in->enhanced), &st);
	}
	if (bounce_override(r, SL_BOUNCE_RULES_SMTP, in->domain, &t, &code, why))
		return code;
	why->source = SL_BOUNCE_SRC_CAUSE;
	switch (in->cause) {
	case SL_BOUNCE_CAUSE_DNS:
		return SL_BOUNCE_DNS_FAILURE;
	case SL_BOUNCE_CAUSE_TIMEOUT:
		return SL_BOUNCE_TIMEOUT;
	case SL_BOUNCE_CAUSE_POLICY:
		return SL_BOUNCE_ADMIN_FAILURE;
	case SL_BOUNCE_CAUSE_REPLY:
		break;
	}
	sev = reply_code >= 200 && reply_code < 600 ? (int)(reply_code / 100) : st.cls;
	if (bounce_table_match(sev, &st, &t, &code, why))
		return code;
	why->source = SL_BOUNCE_SRC_FALLBACK;
	if (sev == 4)
		return SL_BOUNCE_SOFT;
	if (sev == 5 && st.cls != 0 && (st.subject != 0 || st.detail != 0))
		return SL_BOUNCE_GENERIC;
	return SL_BOUNCE_UNDETERMINED;
}

unsigned
sl_bounce_classify_mdn(const struct sl_bounce_rules *r, const struct sl_bounce_mdn *in,
		       struct sl_bounce_why *why)
{
	struct sl_bounce_why dummy;
	struct bounce_status st = { 0 };
	struct bounce_text t;
	unsigned code;

	SL_ASSERT(in != NULL);
	if (why == NULL)
		why = &dummy;
	memset(why, 0, sizeof(*why));
	bounce_text_set(&t, in->text);
	if (in->status != NULL)
		bounce_parse_status(in->status, strlen(in->status), &st);
	if (bounce_override(r, SL_BOUNCE_RULES_MDN, NULL, &t, &code, why))
		return code;
	why->source = SL_BOUNCE_SRC_TABLE;
	if (st.cls == 4)
		return SL_BOUNCE_TRANSIENT;
	if (st.cls == 0) {
		for (size_t i = 0; i < SL_ARRAY_LEN(bounce_mdn_words); i++)
			if (bounce_has(&t, bounce_mdn_words[i].needle))
				return bounce_mdn_words[i].bounce_class;
	}
	/* A notice of failure without a Status is read as a 5xx would be. */
	if (st.cls != 2 && bounce_table_match(5, &st, &t, &code, why))
		return code;
	why->source = SL_BOUNCE_SRC_FALLBACK;
	if (st.cls == 2)
		return SL_BOUNCE_UNDETERMINED;
	if (!in->is_rcpt_known)
		return SL_BOUNCE_GENERIC_NO_RCPT;
	return st.cls == 5 ? SL_BOUNCE_GENERIC : SL_BOUNCE_UNDETERMINED;
}

/* ---------------------------------------------------------------- suppress list */

bool
sl_bounce_suppress_list_has(const char *list, const char *addr)
{
	const char *at, *s;
	size_t addr_len;

	if (list == NULL || addr == NULL)
		return false;
	addr_len = strlen(addr);
	at = strrchr(addr, '@');
	for (s = list; *s != '\0';) {
		const char *e = strchr(s, ',');
		const char *next = e ? e + 1 : s + strlen(s);

		if (e == NULL)
			e = next;
		bounce_trim(&s, &e);
		if (e > s) {
			size_t n = (size_t)(e - s);

			if (*s == '@') {
				if (at != NULL && strlen(at) == n && strncasecmp(at, s, n) == 0)
					return true;
			} else if (addr_len == n && strncasecmp(addr, s, n) == 0) {
				return true;
			}
		}
		s = next;
	}
	return false;
}

/* ---------------------------------------------------------------- bouncelog */

void
sl_log_field(struct sl_buf *b, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		switch (s[i]) {
		case '@':
			sl_buf_append(b, "\\@", 2);
			break;
		case '\\':
			sl_buf_append(b, "\\\\", 2);
			break;
		case '\n':
			sl_buf_append(b, "\\n", 2);
			break;
		case '\r':
			sl_buf_append(b, "\\r", 2);
			break;
		default:
			sl_buf_append(b, &s[i], 1);
		}
	}
}

static void
bounce_log_str(struct sl_buf *b, const char *s)
{
	if (s != NULL)
		sl_log_field(b, s, strlen(s));
}

void
sl_log_address(struct sl_buf *b, const char *addr)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;

	if (at == NULL) {
		bounce_log_str(b, addr);
		sl_buf_append(b, "@", 1);
		return;
	}
	sl_log_field(b, addr, (size_t)(at - addr));
	sl_buf_append(b, "@", 1);
	bounce_log_str(b, at + 1);
}

void
sl_bounce_log_format(const struct sl_bounce_log *l, struct sl_buf *out)
{
	size_t text_len = 0;

	SL_ASSERT(out != NULL && l != NULL);
	sl_buf_printf(out, "%lld@", (long long)l->when);
	bounce_log_str(out, l->qid);
	sl_buf_append(out, "@", 1);
	bounce_log_str(out, l->batch_id ? l->batch_id : l->qid);
	sl_buf_append(out, "@", 1);
	bounce_log_str(out, l->conn_id);
	sl_buf_append(out, l->is_transient ? "@T@" : "@B@", 3);
	sl_log_address(out, l->rcpt);
	sl_buf_append(out, "@", 1);
	sl_log_address(out, l->sender);
	sl_buf_append(out, "@", 1);
	bounce_log_str(out, l->binding_group ? l->binding_group : "default");
	sl_buf_append(out, "@", 1);
	bounce_log_str(out, l->binding ? l->binding : "default");
	sl_buf_printf(out, "@%u@%u@%" PRIu64 "@", l->stage, l->class_code, l->size);
	bounce_log_str(out, l->ip);
	sl_buf_append(out, "@", 1);
	if (l->text != NULL) {
		text_len = strnlen(l->text, SL_BOUNCE_MAX_LOG_TEXT + 1);
		if (text_len > SL_BOUNCE_MAX_LOG_TEXT) {
			text_len = SL_BOUNCE_MAX_LOG_TEXT;
			/* Back off to the start of a UTF-8 sequence cut in two. */
			while (text_len > 0 && ((unsigned char)l->text[text_len] & 0xc0) == 0x80)
				text_len--;
		}
		sl_log_field(out, l->text, text_len);
	}
}
