/*
 * proto/bounce.h - Momentum's bounce classification and the bouncelog line.
 *
 * Three jobs, all pure (no I/O, no clock, no threads, no globals):
 *
 *  - Classify a failure into Momentum's bounce classification codes
 *    (Momentum "Bounce Classification Codes": 1 undetermined, 10 invalid
 *    recipient, 20 soft bounce, ... 100 challenge-response).  The order is
 *    the bounce_classifier module's: the site's override rules first
 *    (modules.bounce_classifier: a rule for the destination domain before a
 *    global one), then what the caller knows for certain (DNS failure,
 *    timeout, local policy), then a built-in table (reliable RFC 3463 codes,
 *    then the wording of real MTAs' replies, then the generic policy codes),
 *    and last the reply's class digit.  The built-in table is in bounce.c,
 *    one row per rule, first match wins.
 *  - Parse the override files (user_smtp_classification_overide,
 *    user_mdn_classification_overide and the system_* pair) and the
 *    custom_classes map into an immutable rule set.  The stage reads the
 *    files; this parses their text and reports the first error with its
 *    line number.
 *  - Format one bouncelog line (Momentum 4 layout, log_formats.bouncelog):
 *
 *      time@msgid@batchid@connid@B@rcpt_local@rcpt_domain@sender_local@
 *          sender_domain@binding_group@binding@stage@class@size@ip@text
 *
 *    with '@', '\' and line breaks inside a field escaped as "\@", "\\",
 *    "\n", "\r": the rule of the mainlog (stages/eclog.c), so one reader
 *    splits both logs.  An address splits into local part and domain at
 *    its last '@'.
 *
 * Also: the Bounce_Suppress_List matcher (a pure check of one address
 * against the option's comma-separated list).  Bounce_Domains matching is
 * sl_validate_domain_in() (proto/validate.h; the same globs as
 * Relay_Domains); Bounce_Pattern is a PCRE and stays with its caller.
 *
 * Threads: a rule set is built on one thread (the config or delivery stage)
 * and then only read: any number of threads may classify with it at once.
 * Everything else is reentrant.  Parses untrusted input: reply texts from
 * remote servers (only the first SL_BOUNCE_MAX_TEXT octets are examined) and
 * override files written by the site (lines up to SL_BOUNCE_MAX_RULE_LINE
 * octets, at most SL_BOUNCE_MAX_RULES rules).
 *
 * Ownership: every string argument is borrowed for the call only; a rule
 * set copies what it keeps.
 */
#ifndef SL_PROTO_BOUNCE_H
#define SL_PROTO_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "engine/buf.h"

#define SL_BOUNCE_MAX_TEXT      4096   /* octets of a reply text the classifier reads */
#define SL_BOUNCE_MAX_RULE_LINE 1024   /* octets of one override line, line end excluded */
#define SL_BOUNCE_MAX_RULES     100000 /* rules in one rule set, all files together */
#define SL_BOUNCE_MAX_LOG_TEXT  2048   /* octets of the raw text in a bouncelog line */

/*
 * Momentum's classification codes, name and meaning (the same for every
 * Momentum version).  X(ID, code, name, description).
 */
#define SL_BOUNCE_CLASSES(X)                                                                    \
	X(UNDETERMINED, 1, "Undetermined", "The response text could not be identified.")        \
	X(INVALID_RECIPIENT, 10, "Invalid Recipient", "The recipient is invalid.")              \
	X(SOFT, 20, "Soft Bounce", "The message soft bounced.")                                 \
	X(DNS_FAILURE, 21, "DNS Failure", "The message bounced due to a DNS failure.")          \
	X(MAILBOX_FULL, 22, "Mailbox Full",                                                     \
	  "The message bounced due to the remote mailbox being over quota.")                    \
	X(TOO_LARGE, 23, "Too Large",                                                           \
	  "The message bounced because it was too large for the recipient.")                    \
	X(TIMEOUT, 24, "Timeout", "The message timed out.")                                     \
	X(ADMIN_FAILURE, 25, "Admin Failure", "The message was failed by configured policies.") \
	X(GENERIC_NO_RCPT, 30, "Generic Bounce: No RCPT",                                       \
	  "No recipient could be determined for the message.")                                  \
	X(GENERIC, 40, "Generic Bounce", "The message failed for unspecified reasons.")         \
	X(MAIL_BLOCK, 50, "Mail Block", "The message was blocked by the receiver.")             \
	X(SPAM_BLOCK, 51, "Spam Block",                                                         \
	  "The message was blocked by the receiver as coming from a known spam source.")        \
	X(SPAM_CONTENT, 52, "Spam Content", "The message was blocked by the receiver as spam.") \
	X(PROHIBITED_ATTACHMENT, 53, "Prohibited Attachment",                                   \
	  "The message was blocked by the receiver because it contained an attachment.")        \
	X(RELAY_DENIED, 54, "Relay Denied",                                                     \
	  "The message was blocked by the receiver because relaying is not allowed.")           \
	X(AUTO_REPLY, 60, "Auto-Reply", "The message is an auto-reply/vacation mail.")          \
	X(TRANSIENT, 70, "Transient Failure",                                                   \
	  "Message transmission has been temporarily delayed.")                                 \
	X(SUBSCRIBE, 80, "Subscribe", "The message is a subscribe request.")                    \
	X(UNSUBSCRIBE, 90, "Unsubscribe", "The message is an unsubscribe request.")             \
	X(CHALLENGE_RESPONSE, 100, "Challenge-Response",                                        \
	  "The message is a challenge-response probe.")

enum sl_bounce_class {
#define SL_BOUNCE__ENUM(id, code, name, desc) SL_BOUNCE_##id = code,
	SL_BOUNCE_CLASSES(SL_BOUNCE__ENUM)
#undef SL_BOUNCE__ENUM
};

/*
 * Momentum's connection stages (log_formats.connection.stages): where in
 * the SMTP dialogue a failure happened.  21 is the only out-of-band one.
 * The delivery stage maps the SMTP client's wait state: greeting 12, EHLO
 * 10, MAIL 2, RCPT 4, DATA (354 or BDAT) 6, reply after the content 9,
 * RSET 13, STARTTLS 15, TLS handshake 17, no connection (DNS, connect,
 * expiry in the queue) 0.
 */
#define SL_BOUNCE_STAGES(X)                         \
	X(NOT_CONNECTED, 0, "while not connected")  \
	X(IDLE, 1, "while idle")                    \
	X(MAIL, 2, "during MAIL FROM")              \
	X(AFTER_MAIL, 3, "after MAIL FROM")         \
	X(RCPT, 4, "during RCPT TO")                \
	X(AFTER_RCPT, 5, "after RCPT TO")           \
	X(DATA, 6, "during DATA")                   \
	X(AFTER_DATA, 7, "after DATA")              \
	X(BODY, 8, "while sending BODY")            \
	X(CONFIRMATION, 9, "reading confirmation")  \
	X(EHLO, 10, "during EHLO")                  \
	X(AFTER_EHLO, 11, "after EHLO")             \
	X(BANNER, 12, "reading BANNER")             \
	X(RSET, 13, "during RSET")                  \
	X(AFTER_RSET, 14, "after RSET")             \
	X(STARTTLS, 15, "during STARTTLS")          \
	X(AFTER_STARTTLS, 16, "after STARTTLS")     \
	X(TLS_HANDSHAKE, 17, "handshaking TLS")     \
	X(TLS_RENEGOTIATE, 18, "renegotiating TLS") \
	X(XCLIENT, 19, "during XCLIENT")            \
	X(AFTER_XCLIENT, 20, "after XCLIENT")       \
	X(OUT_OF_BAND, 21, "out of band bounce")    \
	X(UNKNOWN, 22, "in unknown state")

enum sl_bounce_stage {
#define SL_BOUNCE__STAGE_ENUM(id, num, desc) SL_BOUNCE_STAGE_##id = num,
	SL_BOUNCE_STAGES(SL_BOUNCE__STAGE_ENUM)
#undef SL_BOUNCE__STAGE_ENUM
};

/* What the caller knows for certain about a failure, beyond the reply. */
enum sl_bounce_cause {
	SL_BOUNCE_CAUSE_REPLY,   /* a remote reply (or an "[internal]" text shaped like one)
				    is all there is: classify its code and text */
	SL_BOUNCE_CAUSE_DNS,     /* the destination's DNS failed (NXDOMAIN, no MX/A, SERVFAIL):
				    21.  A null MX (RFC 7505) is not a DNS failure: pass
				    CAUSE_REPLY with "556 5.1.10 ..." (10, invalid recipient) */
	SL_BOUNCE_CAUSE_TIMEOUT, /* a connect or command timeout, message_expiration or
				    max_retries ran out: 24 */
	SL_BOUNCE_CAUSE_POLICY,  /* sluice's own configuration failed it (prohibited_hosts,
				    a policy verdict after acceptance): 25 */
};

/* One in-band (SMTP) failure to classify. */
struct sl_bounce_reply {
	const char *text;     /* the reply as logged: "550 5.1.1 <x@y>: no such user";
				 NUL-terminated; NULL or "" when there was none */
	unsigned code;        /* reply code; 0: read it from the start of text */
	const char *enhanced; /* RFC 3463 code "5.1.1"; NULL: read it from text after the
				 code; "" when the reply had none */
	const char *domain;   /* destination domain (selects per-domain overrides); may be NULL */
	enum sl_bounce_cause cause;
};

/* One out-of-band notice (an MDN or DSN received for mail we sent) to classify. */
struct sl_bounce_mdn {
	const char *text;   /* the notice's own words: its Subject, its human-readable part
			       and Diagnostic-Code, never the returned original (whose list
			       footers say "unsubscribe"); NUL-terminated; may be NULL */
	const char *status; /* Status: of its delivery-status part ("5.1.1"), NULL if none */
	bool is_rcpt_known; /* the original recipient could be determined */
};

/* Where a classification came from (for the console and tests). */
enum sl_bounce_source {
	SL_BOUNCE_SRC_OVERRIDE, /* a site or system rule; `line` says which */
	SL_BOUNCE_SRC_CAUSE,    /* the caller's cause */
	SL_BOUNCE_SRC_TABLE,    /* the built-in table; `line` is the row (1-based) */
	SL_BOUNCE_SRC_FALLBACK, /* the reply's class digit, or nothing matched */
};

struct sl_bounce_why {
	enum sl_bounce_source source;
	unsigned line;       /* override: line in its file; table: row number */
	const char *file;    /* override: the name given to sl_bounce_rules_parse (borrowed
				from the rule set: valid while it lives); otherwise NULL */
	bool is_domain_rule; /* override: it was specific to the destination domain */
};

/* The kinds of override file. */
enum sl_bounce_rules_kind {
	SL_BOUNCE_RULES_SMTP, /* "domain,bounce_code,rule" lines (in-band bounces) */
	SL_BOUNCE_RULES_MDN,  /* "bounce_code,rule" lines (out-of-band notices) */
};

/* A parse error: the first one of a file. */
struct sl_bounce_rules_error {
	unsigned line; /* 1-based; 0 for an error not tied to a line */
	char msg[160]; /* what is wrong, NUL-terminated, no file name or line number */
};

/* An immutable-once-built set of override rules and custom classes. */
struct sl_bounce_rules;

/* The built-in name of `code` ("Invalid Recipient"), or NULL when it has none. */
const char *sl_bounce_class_name(unsigned code);

/* The built-in description of `code` (Momentum's wording), or NULL. */
const char *sl_bounce_class_desc(unsigned code);

/* The description of a connection stage ("during RCPT TO"), or NULL. */
const char *sl_bounce_stage_name(unsigned stage);

/* A new empty rule set (no rules, no custom classes).  Never NULL. */
struct sl_bounce_rules *sl_bounce_rules_new(void);

/* Free a rule set and all it owns.  NULL is fine. */
void sl_bounce_rules_free(struct sl_bounce_rules *r);

/*
 * Register custom class `code` (1..99, not one of Momentum's codes, not yet
 * registered) with `desc` (copied; at most 255 octets, no control
 * characters).  Register classes before parsing rules that use them.
 * Returns 0, -EINVAL (out of range, bad description) or -EEXIST (a
 * built-in or already registered code).
 */
int sl_bounce_rules_add_class(struct sl_bounce_rules *r, unsigned code, const char *desc);

/*
 * The name of `code` as logs and the console show it: a custom class's
 * description, else the built-in name, else NULL.  Borrowed from the rule
 * set or static.  `r` may be NULL.
 */
const char *sl_bounce_rules_class_name(const struct sl_bounce_rules *r, unsigned code);

/*
 * Parse the text of one override file (`len` octets, need not be
 * NUL-terminated) and append its rules to `r`.  `file` names it in
 * sl_bounce_why (copied).  Load order is precedence order: parse the user
 * file before the system file.
 *
 * Format (modules.bounce_classifier): one rule a line, LF or CRLF ends;
 *   SMTP  domain,bounce_code,rule   (empty domain: every domain)
 *   MDN   bounce_code,rule
 * The rule is everything after the last field's comma (it may contain
 * commas); spaces and tabs around each field are ignored.  bounce_code is
 * one of Momentum's codes or a registered custom class.  A rule matches when
 * it occurs in the classified text, case-insensitively; each '|' in it
 * stands for any run of characters (so "mailbox|full" matches "mailbox is
 * full").  Blank lines and lines starting with '#' are skipped (sluice's
 * addition: Momentum's domain or code field never starts with '#').
 *
 * On the first error returns -EINVAL, fills `err` (when not NULL) and keeps
 * none of this file's rules (the set is as before the call); the caller
 * keeps using the rule set it had.  -E2BIG when the set would pass
 * SL_BOUNCE_MAX_RULES.  Returns the number of rules added.
 */
int sl_bounce_rules_parse(struct sl_bounce_rules *r, enum sl_bounce_rules_kind kind,
			  const char *file, const char *text, size_t len,
			  struct sl_bounce_rules_error *err);

/* Rules in the set, of both kinds. */
size_t sl_bounce_rules_count(const struct sl_bounce_rules *r);

/*
 * Classify an in-band failure (see the order above).  `r` may be NULL (no
 * overrides).  `why` may be NULL.  Returns the class code: a built-in one or
 * a custom class an override named.  Never fails: a reply nothing explains
 * is 20 when its class is 4, 40 when it is 5 with an RFC 3463 code other
 * than X.0.0, else 1.
 */
unsigned sl_bounce_classify(const struct sl_bounce_rules *r, const struct sl_bounce_reply *in,
			    struct sl_bounce_why *why);

/*
 * Classify an out-of-band notice: MDN overrides; then a delivery-status
 * Status 4.x.x is 70 (delayed), 5.x.x goes through the built-in table as a
 * 5xx reply would; without a Status the words decide (auto-reply 60,
 * challenge-response 100, unsubscribe 90, subscribe 80, delayed 70, then the
 * table).  A failure nothing explains is 30 when no recipient is known, 40
 * with a Status, else 1.
 */
unsigned sl_bounce_classify_mdn(const struct sl_bounce_rules *r, const struct sl_bounce_mdn *in,
				struct sl_bounce_why *why);

/*
 * True when `addr` is on a Bounce_Suppress_List value `list`: entries are
 * separated by commas (spaces around them ignored); "user@domain" matches
 * that address, "@domain" every address at that domain; case-insensitive.
 * Momentum uses the list to rule addresses out as the original recipient
 * when it analyses an out-of-band bounce (conf.ref.bounce_suppress_list);
 * it does not stop DSNs from being generated.  NULL list or addr: false.
 */
bool sl_bounce_suppress_list_has(const char *list, const char *addr);

/*
 * Momentum's '@'-separated log fields (mainlog, bouncelog): append `len`
 * bytes of `s` with '@', '\' and line breaks escaped.
 */
void sl_log_field(struct sl_buf *b, const char *s, size_t len);

/* "local@domain" as two such fields, split at the last '@'; NULL: "@". */
void sl_log_address(struct sl_buf *b, const char *addr);

/* One bouncelog record; strings borrowed, NULL means empty unless said. */
struct sl_bounce_log {
	time_t when;               /* field 0: the time of the bounce (see below) */
	const char *qid;           /* the message's queue id */
	const char *batch_id;      /* NULL: the queue id (sluice has no injection batches,
				      as in the mainlog) */
	const char *conn_id;       /* connection id of the reception */
	bool is_transient;         /* 'T' (a transient failure) instead of 'B' */
	const char *rcpt;          /* recipient address, split at its last '@' */
	const char *sender;        /* envelope sender ("" null), split likewise */
	const char *binding_group; /* NULL: "default" (as the mainlog) */
	const char *binding;       /* NULL: "default" */
	unsigned stage;            /* enum sl_bounce_stage */
	unsigned class_code;       /* the classification code */
	uint64_t size;             /* message size in octets */
	const char *ip;            /* the remote server's address; NULL: none */
	const char *text;          /* the raw reply; cut to SL_BOUNCE_MAX_LOG_TEXT octets
				      (never inside a UTF-8 sequence) */
};

/*
 * Append one bouncelog line for `l` to `out`, without a line end (the log
 * stream adds it, as for the mainlog).  Field 0 is `when`: Momentum's
 * tables label it "date of reception", but its example is an expiry long
 * after reception, and heartbeat lines ("time@@@@M1") mark the log's
 * progress in time, so sluice writes the time of the bounce, as its mainlog
 * does for D/T/P lines.  Never fails.
 */
void sl_bounce_log_format(const struct sl_bounce_log *l, struct sl_buf *out);

#endif /* SL_PROTO_BOUNCE_H */
