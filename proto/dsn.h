/*
 * proto/dsn.h - delivery status notifications (RFC 3464) and when to send them.
 *
 * When the delivery stage gives up on recipients of a message (or wants to
 * report a delay), it asks sl_dsn_decide() whether a notification goes out
 * and to whom, then sl_dsn_build() writes the complete message:
 *
 *   From: Mail Delivery System <mailer-daemon@host>     (MailerDaemon)
 *   To: <original sender>
 *   Subject, Date, Message-ID, Auto-Submitted: auto-replied (RFC 3834 §5)
 *   MIME-Version: 1.0
 *   Content-Type: multipart/report; report-type=delivery-status; boundary="=_sluice_..."
 *
 *   1. text/plain: what happened to each recipient, in plain words
 *   2. message/delivery-status (RFC 3464 §2): Reporting-MTA, X-Sluice-Queue-ID,
 *      Arrival-Date, then per recipient Original-Recipient (when known),
 *      Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code,
 *      Last-Attempt-Date, Will-Retry-Until (delays)
 *   3. the original (Bounces_Inline_Original): "headers" (Momentum's default)
 *      text/rfc822-headers (RFC 6522 §4), "all" message/rfc822, "none" no
 *      third part
 *
 * Its envelope: the null reverse-path (RFC 5321 §4.5.5, RFC 3464 §2) and
 * one recipient, the `to` that sl_dsn_decide() chose.
 *
 * Output rules: CRLF line ends, every line at most 998 octets (RFC 5322
 * §2.1.1).  Long Diagnostic-Code values are folded at spaces (RFC 5322
 * §2.2.3) to 78 columns when they can be; a run without a space too long
 * for one line is broken with CRLF SP (unfolding then shows an extra
 * space).  Text lines of part 1 wrap at 76 columns the same way.  Diagnostics longer than SL_DSN_MAX_DIAG octets are cut and end
 * in " [...]".  Control characters in diagnostics and host names become
 * spaces; in the ASCII form every non-ASCII octet of them becomes '?'.
 * The boundary is "=_sluice_<hash of unique_id and qid>_<n>=": "=_" never
 * occurs in quoted-printable or base64, and n is the smallest number for
 * which the boundary occurs nowhere in the three parts (the same input
 * always gives the same message).
 *
 * 8-bit and SMTPUTF8 (RFC 6531/6532/6533):
 *   - A DSN about a message received with SMTPUTF8, or with a non-ASCII
 *     address among those reported, is "global" (RFC 6533): report-type
 *     global-delivery-status, part 2 message/global-delivery-status with
 *     "utf-8;" addresses for non-ASCII ones (§3), part 3 message/global
 *     or message/global-headers.  Invalid UTF-8 in texts becomes '?'.
 *   - The original is copied unchanged except that bare CR or LF become
 *     CRLF (as Lone_LF_in_*=fix would) and a missing final CRLF is added.
 *     If it has 8-bit octets its part says Content-Transfer-Encoding:
 *     8bit (RFC 2046 §5.2.1 allows only 7bit/8bit/binary there) and the
 *     result asks for BODY=8BITMIME.
 *   - "all" turns into "headers" (the text part says so) when the
 *     original holds a NUL or a line over 998 octets (message/rfc822 may
 *     not be re-encoded, RFC 2046 §5.2.1), or is over max_inline_len.  A
 *     header line over 998 octets is cut; the header section is cut at a
 *     line boundary at max_inline_len (else SL_DSN_MAX_HEADERS).
 *   - The result asks for SMTPUTF8 only when the DSN's own envelope or
 *     header fields need it (a non-ASCII `to` or MailerDaemon address):
 *     UTF-8 inside the parts is 8-bit content, carried by 8BITMIME.
 *
 * Not sent (sl_dsn_decide): for the null sender (RFC 5321 §6.1) unless
 * MDN_Failures_Notify names a mailbox; when Generate_Bounces is off for the
 * message's scope; for a message that is itself a delivery or disposition
 * report (sl_dsn_is_report; loop protection even if a broken MTA gave it a
 * sender); for recipients refused by policy in a message whose others were
 * taken, when Generate_Bounces_For_Multi_Recipient_Policy_Rejections is off.
 * Auto-Submitted on the original does not stop a DSN: RFC 3834 governs
 * automatic responses, not DSNs, and mailing lists (Auto-Submitted:
 * auto-generated, real sender) depend on their bounces.
 * Bounce_Suppress_List and Bounce_Domains concern bounces sluice receives,
 * not those it sends (proto/bounce.h).
 *
 * Threads: any; pure functions (no I/O, no clock: the caller passes `now`).
 * Parses untrusted input: the original message (bounded by its iovecs and
 * max_inline_len) and remote texts (bounded by SL_DSN_MAX_DIAG).
 * Ownership: every argument is borrowed for the call; output goes to the
 * caller's sl_buf.
 */
#ifndef SL_PROTO_DSN_H
#define SL_PROTO_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include "engine/buf.h"

#define SL_DSN_MAX_RCPTS   1000           /* recipients in one DSN */
#define SL_DSN_MAX_ADDR    512            /* octets of an address or MailerDaemon value */
#define SL_DSN_MAX_HOST    255            /* octets of a host name (RFC 5321 §4.5.3.1.2) */
#define SL_DSN_MAX_ID      128            /* octets of unique_id and qid */
#define SL_DSN_MAX_DIAG    2048           /* octets of a diagnostic kept */
#define SL_DSN_MAX_HEADERS (256u * 1024u) /* octets of the original header section kept */
#define SL_DSN_MAX_LINE    998            /* RFC 5322 §2.1.1, CRLF excluded */

/* RFC 3464 §2.3.3 actions sluice reports. */
enum sl_dsn_action {
	SL_DSN_ACTION_FAILED,  /* given up: Status 5.x.x (or 4.x.x when the last try was
				  transient and the message expired; 5.4.7 is better) */
	SL_DSN_ACTION_DELAYED, /* still trying: Status 4.x.x */
};

/* Bounces_Inline_Original, in the option's value order (headers|none|all). */
enum sl_dsn_inline {
	SL_DSN_INLINE_HEADERS,
	SL_DSN_INLINE_NONE,
	SL_DSN_INLINE_ALL,
};

/* One reported recipient.  Strings borrowed, NUL-terminated. */
struct sl_dsn_rcpt {
	const char *addr;  /* Final-Recipient: the address delivery was tried to */
	const char *orcpt; /* Original-Recipient (RFC 3461 ORCPT, or the address as
			      received when it was rewritten); NULL: none */
	enum sl_dsn_action action;
	const char *status;      /* RFC 3463 "5.1.1" (see sl_dsn_status_from_reply) */
	const char *remote_mta;  /* the server that answered (name, or an IP address,
				    which is written as a literal); NULL: none */
	const char *diagnostic;  /* its reply "550 5.1.1 <x@y>: no such user", or sluice's
				    own words; NULL: none */
	bool is_smtp_diagnostic; /* the diagnostic is an SMTP reply ("smtp;"); else it is
				    sluice's text ("X-Sluice;") */
	time_t last_attempt;     /* Last-Attempt-Date; 0: none */
	time_t will_retry_until; /* Will-Retry-Until for a delay; 0: none */
};

/* Everything one DSN reports. */
struct sl_dsn_msg {
	const char *reporting_mta;       /* our host name (Hostname): Reporting-MTA, the text */
	const char *msgid_host;          /* right side of Message-ID; NULL: reporting_mta */
	const char *mailer_daemon;       /* MailerDaemon; NULL: "mailer-daemon@" reporting_mta
					    (Momentum's default, conf.ref.mailerdaemon) */
	const char *to;                  /* the DSN's recipient (from sl_dsn_decide) */
	const char *unique_id;           /* left side of Message-ID: dot-atom text, unique
					    per DSN (e.g. the DSN's own queue id) */
	const char *qid;                 /* queue id of the failed message (printable ASCII) */
	time_t arrival;                  /* when it was received (Arrival-Date) */
	time_t now;                      /* Date: */
	const struct sl_dsn_rcpt *rcpts; /* 1..SL_DSN_MAX_RCPTS */
	size_t rcpt_cnt;
	const struct iovec *orig; /* the original as stored: header section, blank
				     line, body; CRLF lines; may be split anywhere */
	size_t orig_cnt;
	enum sl_dsn_inline inline_original;
	uint64_t max_inline_len; /* most octets of the original to include; 0: no
				    limit (headers still stop at SL_DSN_MAX_HEADERS) */
	bool is_smtputf8;        /* the original came with SMTPUTF8 */
};

/* What sl_dsn_build() made. */
struct sl_dsn_result {
	bool is_8bitmime;            /* 8-bit octets in the body: send BODY=8BITMIME */
	bool is_smtputf8;            /* UTF-8 in its envelope or header fields */
	bool is_global;              /* RFC 6533 media types were used */
	enum sl_dsn_inline included; /* what of the original went in (HEADERS when ALL
					had to be reduced, NONE when there was nothing) */
};

/* Whether and where a DSN goes. */
enum sl_dsn_verdict {
	SL_DSN_TO_SENDER,      /* to the envelope sender */
	SL_DSN_TO_NOTIFY,      /* null sender: to MDN_Failures_Notify */
	SL_DSN_NO_DISABLED,    /* Generate_Bounces is off */
	SL_DSN_NO_NULL_SENDER, /* RFC 5321 §6.1: nobody to tell */
	SL_DSN_NO_REPORT,      /* the failed message is itself a report (no bounce loops) */
	SL_DSN_NO_POLICY,      /* partial policy refusal, and its option is off */
};

/* The facts sl_dsn_decide() weighs.  Strings borrowed. */
struct sl_dsn_facts {
	const char *sender;           /* envelope sender of the failed message; "" null */
	const char *failures_notify;  /* MDN_Failures_Notify; NULL or "": unset */
	bool is_generate_bounces;     /* Generate_Bounces for the message's scope */
	bool is_report;               /* sl_dsn_is_report() of the failed message, or
					 sluice generated it (a DSN of its own) */
	bool is_partial_policy;       /* recipients refused by policy after others of
					 the message were accepted */
	bool is_multi_policy_bounces; /* Generate_Bounces_For_Multi_Recipient_
					 Policy_Rejections */
};

/*
 * Decide whether a DSN is sent and to whom.  On SL_DSN_TO_* sets *to to the
 * address (borrowed from `f`); otherwise *to is NULL.  Order: report,
 * disabled, policy, null sender.  Never fails.
 */
enum sl_dsn_verdict sl_dsn_decide(const struct sl_dsn_facts *f, const char **to);

/* "to sender", "disabled", ...: the verdict for logs.  Static string. */
const char *sl_dsn_verdict_name(enum sl_dsn_verdict v);

/*
 * True when the message's header section has "Content-Type: multipart/
 * report" with report-type delivery-status, global-delivery-status,
 * disposition-notification or global-disposition-notification (RFC 6522,
 * 3464, 8098, 6533).  Feedback reports (ARF) are not: they want bounces.
 * Reads at most SL_DSN_MAX_HEADERS octets of `orig`.
 */
bool sl_dsn_is_report(const struct iovec *orig, size_t orig_cnt);

/*
 * Write a valid RFC 3463 status for a recipient into `out` (at least 12
 * octets): `enhanced` when it is one ("5.1.1", class 2/4/5, subject and
 * detail of 1-3 digits), else derived from the reply code: 4xx "4.0.0",
 * 5xx "5.0.0", anything else the class of `action` ("5.0.0" failed,
 * "4.0.0" delayed).  Returns out.
 */
char *sl_dsn_status_from_reply(unsigned code, const char *enhanced, enum sl_dsn_action action,
			       char *out);

/*
 * RFC 3463 status in plain words ("the mailbox is full"): by subject and
 * detail, else by subject; never NULL.  Static string.
 */
const char *sl_dsn_status_text(const char *status);

/*
 * Build the DSN described by `m` (see above), appending it to `out`, and
 * fill `res` (may be NULL).  Returns 0, or -EINVAL when `m` breaks its
 * contract (no recipients or more than SL_DSN_MAX_RCPTS; an empty or
 * over-long address or host; a control character, '<', '>' or invalid
 * UTF-8 in an address; a host name with other than letters, digits and
 * ".-_[]:"; a status that is not class 4 or 5 RFC 3463 syntax; a unique_id
 * that is not dot-atom text; a qid with spaces, control or non-ASCII
 * octets); then `out` is as it was.  Never fails otherwise: remote texts
 * and the original are made safe, not refused.
 */
int sl_dsn_build(const struct sl_dsn_msg *m, struct sl_buf *out, struct sl_dsn_result *res);

#endif /* SL_PROTO_DSN_H */
