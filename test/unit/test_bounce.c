/*
 * test/unit/test_bounce.c - bounce classification, override rules and the
 * bouncelog line (proto/bounce.c).
 *
 * The classifier is run over replies of the kind Gmail, Outlook/Office 365,
 * Yahoo, Postfix, Exim and Sendmail send (multi-line replies joined with a
 * space, as the SMTP client reports them), so that every Momentum code has
 * a realistic case; then the out-of-band notices; then the override files
 * (syntax errors with their line numbers, '|' wildcards, a domain's rules
 * before the global ones, custom classes); then the bouncelog line and its
 * escaping, read back by a splitter that honours the escapes.
 *
 * Threads: one.  Parses only what the code under test wrote.  Ownership:
 * each test frees what it made.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/alloc.h"
#include "engine/assert.h"
#include "engine/buf.h"
#include "proto/bounce.h"

/* ---------------------------------------------------------------- names */

static void
test_names(void **state)
{
	/* Momentum's "Bounce Classification Codes" table. */
	static const struct {
		unsigned code;
		const char *name;
	} codes[] = {
		{ 1, "Undetermined" },
		{ 10, "Invalid Recipient" },
		{ 20, "Soft Bounce" },
		{ 21, "DNS Failure" },
		{ 22, "Mailbox Full" },
		{ 23, "Too Large" },
		{ 24, "Timeout" },
		{ 25, "Admin Failure" },
		{ 30, "Generic Bounce: No RCPT" },
		{ 40, "Generic Bounce" },
		{ 50, "Mail Block" },
		{ 51, "Spam Block" },
		{ 52, "Spam Content" },
		{ 53, "Prohibited Attachment" },
		{ 54, "Relay Denied" },
		{ 60, "Auto-Reply" },
		{ 70, "Transient Failure" },
		{ 80, "Subscribe" },
		{ 90, "Unsubscribe" },
		{ 100, "Challenge-Response" },
	};
	unsigned known = 0;

	for (size_t i = 0; i < SL_ARRAY_LEN(codes); i++) {
		assert_string_equal(sl_bounce_class_name(codes[i].code), codes[i].name);
		assert_non_null(sl_bounce_class_desc(codes[i].code));
	}
	for (unsigned c = 0; c < 256; c++)
		known += sl_bounce_class_name(c) != NULL;
	assert_int_equal(known, SL_ARRAY_LEN(codes));
	assert_null(sl_bounce_class_desc(99));
	assert_string_equal(sl_bounce_stage_name(SL_BOUNCE_STAGE_RCPT), "during RCPT TO");
	assert_string_equal(sl_bounce_stage_name(0), "while not connected");
	assert_string_equal(sl_bounce_stage_name(21), "out of band bounce");
	assert_string_equal(sl_bounce_stage_name(22), "in unknown state");
	for (unsigned s = 0; s <= 22; s++)
		assert_non_null(sl_bounce_stage_name(s));
	assert_null(sl_bounce_stage_name(23));
}

/* ---------------------------------------------------------------- in-band */

struct ccase {
	const char *who; /* where the text comes from */
	const char *text;
	unsigned want;
	enum sl_bounce_cause cause;
	unsigned code;        /* 0: from the text */
	const char *enhanced; /* NULL: from the text */
};

static const struct ccase classify_cases[] = {
	/* 10 invalid recipient */
	{ .who = "gmail",
	  .text = "550-5.1.1 The email account that you tried to reach does not exist. Please try "
		  "550-5.1.1 double-checking the recipient's email address for typos or 550-5.1.1 "
		  "unnecessary spaces. Learn more at 550 5.1.1  "
		  "https://support.google.com/mail/?p=NoSuchUser a1si123456qkb.12 - gsmtp",
	  .want = 10 },
	{ .who = "postfix",
	  .text = "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in "
		  "local recipient table",
	  .want = 10 },
	{ .who = "sendmail", .text = "550 5.1.1 <nobody@example.com>... User unknown", .want = 10 },
	{ .who = "outlook.com",
	  .text = "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). "
		  "[DM6NAM12FT034.eop-nam12.prod.protection.outlook.com]",
	  .want = 10 },
	{ .who = "office365",
	  .text = "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP "
		  "address lookup",
	  .want = 10 },
	{ .who = "office365 DBEB",
	  .text = "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) "
		  "[BN8NAM12FT012.eop-nam12.prod.protection.outlook.com]",
	  .want = 10 },
	{ .who = "yahoo",
	  .text = "554 delivery error: dd This user doesn't have a yahoo.com account "
		  "(nobody@yahoo.com) [0] - mta1234.mail.gq1.yahoo.com",
	  .want = 10 },
	{ .who = "yahoo",
	  .text = "552 1 Requested mail action aborted, mailbox not found",
	  .want = 10 },
	{ .who = "yahoo",
	  .text = "554 30 Sorry, your message to x@yahoo.com cannot be delivered.  This mailbox "
		  "is disabled (554.30).",
	  .want = 10 },
	{ .who = "exim", .text = "550 Unrouteable address", .want = 10 },
	{ .who = "null MX (RFC 7505)",
	  .text = "556 5.1.10 Recipient address has null MX",
	  .want = 10 },
	/* 20 soft bounce */
	{ .who = "gmail rate",
	  .text = "450-4.2.1 The user you are trying to contact is receiving mail at a rate that "
		  "450-4.2.1 prevents additional messages from being delivered. Please resend your "
		  "450-4.2.1 message at a later time. If the user is able to receive mail at that "
		  "450-4.2.1 time, your message will be delivered. 450 4.2.1  "
		  "https://support.google.com/mail/?p=ReceivingRate b2si1234567qkb.88 - gsmtp",
	  .want = 20 },
	{ .who = "postgrey",
	  .text = "450 4.2.0 <bob@example.net>: Recipient address rejected: Greylisted, see "
		  "http://postgrey.schweikert.ch/help/example.net.html",
	  .want = 20 },
	{ .who = "gmail",
	  .text = "421-4.7.0 Try again later, closing connection. (EHLO) 421 4.7.0  "
		  "https://support.google.com/mail/answer/7040 c3si99qkb.1 - gsmtp",
	  .want = 20 },
	{ .who = "outlook",
	  .text = "451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77714) "
		  "[DB5EUR03FT010.eop-EUR03.prod.protection.outlook.com]",
	  .want = 20 },
	{ .who = "postfix", .text = "452 4.3.1 Insufficient system storage", .want = 20 },
	/* 21 DNS failure */
	{ .who = "local DNS",
	  .text = "Host or domain name not found. Name service error for name=nx.example "
		  "type=MX: Host not found",
	  .want = 21,
	  .cause = SL_BOUNCE_CAUSE_DNS },
	{ .who = "sendmail",
	  .text = "550 5.1.2 <x@nx.example>... Host unknown (Name server: nx.example: host "
		  "not found)",
	  .want = 21 },
	{ .who = "postfix",
	  .text = "450 4.1.2 <x@nx.example>: Recipient address rejected: Domain not found",
	  .want = 21 },
	{ .who = "exim", .text = "550 Unrouteable mail domain \"nx.example\"", .want = 21 },
	/* 22 mailbox full */
	{ .who = "gmail",
	  .text = "552-5.2.2 The email account that you tried to reach is over quota. Please "
		  "direct "
		  "552-5.2.2 the recipient to 552 5.2.2  "
		  "https://support.google.com/mail/?p=OverQuotaPerm d4si1qkb.2 - gsmtp",
	  .want = 22 },
	{ .who = "gmail temp",
	  .text = "452-4.2.2 The email account that you tried to reach is over quota. 452 "
		  "4.2.2  https://support.google.com/mail/?p=OverQuotaTemp e5si2qkb.3 - gsmtp",
	  .want = 22 },
	{ .who = "dovecot lmtp",
	  .text = "552 5.2.2 <bob@example.net> Quota exceeded (mailbox for user is full)",
	  .want = 22 },
	{ .who = "RFC 5321 text",
	  .text = "552 Requested mail action aborted: exceeded storage allocation",
	  .want = 22 },
	/* 23 too large */
	{ .who = "postfix", .text = "552 5.3.4 Message size exceeds fixed limit", .want = 23 },
	{ .who = "gmail",
	  .text = "552-5.3.4 Your message exceeded Google's message size limits. Please visit "
		  "552-5.3.4  https://support.google.com/mail/?p=MaxSizeError to view our size "
		  "552 5.3.4  guidelines. f6si3qkb.4 - gsmtp",
	  .want = 23 },
	{ .who = "office365",
	  .text = "550 5.2.3 RESOLVER.RST.RecipSizeLimit; message too large for this recipient",
	  .want = 23 },
	{ .who = "exim", .text = "552 Message size exceeds maximum permitted", .want = 23 },
	/* 24 timeout */
	{ .who = "momentum expiry",
	  .text = "554 5.4.7 [internal] exceeded max time without delivery",
	  .want = 24 },
	{ .who = "local timeout",
	  .text = "451 4.4.1 [internal] connection timed out",
	  .want = 24,
	  .cause = SL_BOUNCE_CAUSE_TIMEOUT },
	{ .who = "postfix",
	  .text = "421 4.4.2 mx.example.net Error: timeout exceeded",
	  .want = 24 },
	/* 25 admin failure */
	{ .who = "local policy",
	  .text = "550 5.7.1 [internal] prohibited host",
	  .want = 25,
	  .cause = SL_BOUNCE_CAUSE_POLICY },
	/* 40 generic bounce */
	{ .who = "postfix loop", .text = "554 5.4.6 Too many hops", .want = 40 },
	{ .who = "exim loop",
	  .text = "550 Too many \"Received\" headers - suspected mail loop",
	  .want = 40 },
	{ .who = "unexplained 5.6.0", .text = "554 5.6.0 Message could not be parsed", .want = 40 },
	/* 1 undetermined */
	{ .who = "bare 550", .text = "550 Requested action not taken", .want = 1 },
	{ .who = "5.0.0", .text = "554 5.0.0 Service unavailable", .want = 1 },
	{ .who = "nothing", .text = "", .want = 1 },
	/* 50 mail block */
	{ .who = "gmail 5.7.26",
	  .text = "550-5.7.26 This mail is unauthenticated, which poses a security risk to the "
		  "550-5.7.26 sender and Gmail users, and has been blocked. The sender must "
		  "550-5.7.26 authenticate with at least one of SPF or DKIM. For this message, "
		  "550-5.7.26 DKIM checks did not pass and SPF check for [example.org] did not "
		  "550-5.7.26 pass with ip: [192.0.2.1]. To best protect our users from spam, the "
		  "550-5.7.26 message has been blocked. 550 5.7.26  "
		  "https://support.google.com/mail/answer/81126#authentication g7si4qkb.5 - gsmtp",
	  .want = 50 },
	{ .who = "yahoo",
	  .text = "554 5.7.9 Message not accepted for policy reasons.  See "
		  "https://postmaster.yahooinc.com/error-codes",
	  .want = 50 },
	{ .who = "exim", .text = "550 Administrative prohibition", .want = 50 },
	{ .who = "postfix",
	  .text = "554 5.7.1 <alice@example.org>: Sender address rejected: Access denied",
	  .want = 50 },
	{ .who = "exim sender verify",
	  .text = "550-Verification failed for <alice@example.org> "
		  "550-Unrouteable address 550 Sender verify failed",
	  .want = 50 },
	{ .who = "postfix",
	  .text = "450 4.7.1 Client host rejected: cannot find your reverse hostname, "
		  "[192.0.2.1]",
	  .want = 50 },
	{ .who = "postfix",
	  .text = "553 5.1.8 <alice@nx.example>: Sender address rejected: Domain not found",
	  .want = 50 },
	{ .who = "office365",
	  .text = "550 5.7.708 Service unavailable. Access denied, traffic not accepted from "
		  "this IP.",
	  .want = 50 },
	/* 51 spam block */
	{ .who = "outlook S3150",
	  .text = "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact "
		  "your "
		  "Internet service provider since part of their network is on our block list "
		  "(S3150). "
		  "You can also refer your provider to "
		  "http://mail.live.com/mail/troubleshooting.aspx#errors.",
	  .want = 51 },
	{ .who = "postfix rbl",
	  .text = "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using "
		  "zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.1",
	  .want = 51 },
	{ .who = "yahoo BL21",
	  .text = "553 5.7.1 [BL21] Connections will not be accepted from 192.0.2.1, because "
		  "the ip is in Spamhaus's list; see https://postmaster.yahooinc.com/error-codes",
	  .want = 51 },
	{ .who = "gmail 4.7.28",
	  .text = "421-4.7.28 [192.0.2.1      15] Our system has detected an unusual rate of "
		  "421-4.7.28 unsolicited mail originating from your IP address. To protect our "
		  "421-4.7.28 users from spam, mail sent from your IP address has been temporarily "
		  "421-4.7.28 rate limited. 421 4.7.28  "
		  "https://support.google.com/mail/?p=UnsolicitedRateLimitError "
		  "h8si5qkb.6 - gsmtp",
	  .want = 51 },
	{ .who = "office365",
	  .text = "550 5.7.606 Access denied, banned sending IP [192.0.2.1]. To request "
		  "removal from this list please visit https://sender.office.com/ and follow "
		  "the directions.",
	  .want = 51 },
	/* 52 spam content */
	{ .who = "gmail",
	  .text = "550-5.7.1 [192.0.2.1      12] Our system has detected that this message is "
		  "550-5.7.1 likely unsolicited mail. To reduce the amount of spam sent to Gmail, "
		  "550-5.7.1 this message has been blocked. Please visit 550-5.7.1  "
		  "https://support.google.com/mail/?p=UnsolicitedMessageError 550 5.7.1  for more "
		  "information. i9si6qkb.7 - gsmtp",
	  .want = 52 },
	{ .who = "office365",
	  .text = "550 5.7.350 Remote server returned message detected as spam",
	  .want = 52 },
	{ .who = "rspamd", .text = "554 5.7.1 Spam message rejected", .want = 52 },
	/* 53 prohibited attachment */
	{ .who = "gmail",
	  .text = "552-5.7.0 Our system detected an illegal attachment on your message. Please "
		  "552-5.7.0 visit http://mail.google.com/support/bin/answer.py?answer=6590 to "
		  "552 5.7.0 review our attachment guidelines. j1si7qkb.8 - gsmtp",
	  .want = 53 },
	{ .who = "postfix mime_header_checks",
	  .text = "550 5.7.1 Attachment type not allowed: invoice.exe",
	  .want = 53 },
	/* 54 relay denied */
	{ .who = "postfix",
	  .text = "554 5.7.1 <bob@example.net>: Relay access denied",
	  .want = 54 },
	{ .who = "postfix 4xx",
	  .text = "454 4.7.1 <bob@example.net>: Relay access denied",
	  .want = 54 },
	{ .who = "exim", .text = "550 relay not permitted", .want = 54 },
	{ .who = "sendmail",
	  .text = "550 5.7.1 <bob@example.net>... Relaying denied. IP name lookup failed "
		  "[192.0.2.1]",
	  .want = 54 },
	{ .who = "office365",
	  .text = "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain",
	  .want = 54 },
	{ .who = "office365",
	  .text = "550 5.7.64 TenantAttribution; Relay Access Denied "
		  "[SN1NAM02FT003.eop-nam02.prod.protection.outlook.com]",
	  .want = 54 },
	{ .who = "gmail",
	  .text = "550-5.7.0 Mail relay denied [192.0.2.1]. Invalid credentials for relay for "
		  "one of the domains in: example.org (as obtained from HELO and MAIL FROM).",
	  .want = 54 },
	/* code and status given apart from the text (the SMTP client reports them so) */
	{ .who = "split fields",
	  .text = "The email account that you tried to reach does not exist.",
	  .want = 10,
	  .cause = SL_BOUNCE_CAUSE_REPLY,
	  .code = 550,
	  .enhanced = "5.1.1" },
	{ .who = "split, no status",
	  .text = "Requested action not taken",
	  .want = 20,
	  .cause = SL_BOUNCE_CAUSE_REPLY,
	  .code = 450,
	  .enhanced = "" },
	{ .who = "status overrides text",
	  .text = "550 5.1.1 whatever",
	  .want = 22,
	  .cause = SL_BOUNCE_CAUSE_REPLY,
	  .code = 0,
	  .enhanced = "5.2.2" },
	{ .who = "4-digit detail is no status", .text = "550 5.1.1000 x", .want = 1 },
	{ .who = "3-digit detail", .text = "554 5.7.500 x", .want = 50 },
};

static void
test_classify(void **state)
{
	bool is_seen[101] = { false };

	for (size_t i = 0; i < SL_ARRAY_LEN(classify_cases); i++) {
		const struct ccase *c = &classify_cases[i];
		struct sl_bounce_reply in = {
			.text = c->text,
			.code = c->code,
			.enhanced = c->enhanced,
			.domain = "example.net",
			.cause = c->cause,
		};
		struct sl_bounce_why why;
		unsigned got = sl_bounce_classify(NULL, &in, &why);

		if (got != c->want)
			fail_msg("%s: \"%s\": got %u (%s, source %d row %u), want %u", c->who,
				 c->text, got, sl_bounce_class_name(got), why.source, why.line,
				 c->want);
		is_seen[got] = true;
	}
	/* Every in-band code has a case above. */
	for (unsigned code = 1; code <= 54; code++)
		if (sl_bounce_class_name(code) != NULL && code != 30)
			if (!is_seen[code])
				fail_msg("no case classifies as %u", code);
}

static void
test_classify_why(void **state)
{
	struct sl_bounce_reply in = { .text = "550 5.1.1 no such user" };
	struct sl_bounce_why why;

	assert_int_equal(sl_bounce_classify(NULL, &in, &why), 10);
	assert_int_equal(why.source, SL_BOUNCE_SRC_TABLE);
	assert_true(why.line > 0);
	in.cause = SL_BOUNCE_CAUSE_DNS;
	assert_int_equal(sl_bounce_classify(NULL, &in, &why), 21);
	assert_int_equal(why.source, SL_BOUNCE_SRC_CAUSE);
	in.cause = SL_BOUNCE_CAUSE_REPLY;
	in.text = "451 try later";
	assert_int_equal(sl_bounce_classify(NULL, &in, NULL), 20);
	assert_int_equal(sl_bounce_classify(NULL, &in, &why), 20);
	assert_int_equal(why.source, SL_BOUNCE_SRC_FALLBACK);
	in.text = NULL;
	assert_int_equal(sl_bounce_classify(NULL, &in, &why), 1);

	/* Only SL_BOUNCE_MAX_TEXT octets are read. */
	{
		char *big = sl_calloc(1, SL_BOUNCE_MAX_TEXT + 64);

		memset(big, 'x', SL_BOUNCE_MAX_TEXT + 40);
		memcpy(big, "550 ", 4);
		memcpy(big + SL_BOUNCE_MAX_TEXT + 10, "user unknown", 12);
		in.text = big;
		assert_int_equal(sl_bounce_classify(NULL, &in, NULL), 1);
		memcpy(big + 100, "user unknown", 12);
		assert_int_equal(sl_bounce_classify(NULL, &in, NULL), 10);
		sl_free(big);
	}
}

/* ---------------------------------------------------------------- out-of-band */

static void
test_classify_mdn(void **state)
{
	static const struct {
		const char *text;
		const char *status;
		bool is_rcpt_known;
		unsigned want;
	} cases[] = {
		{ "Automatic reply: Out of Office until Monday", NULL, true, 60 },
		{ "Auto-Submitted: auto-replied I am on vacation", NULL, true, 60 },
		{ "Delivery Status Notification (Delay) Delivery has been delayed", NULL, true,
		  70 },
		{ "Warning: message delayed", "4.4.7", true, 70 },
		{ "subscribe", NULL, true, 80 },
		{ "Please unsubscribe me from this list", NULL, true, 90 },
		{ "This is an automated message from Spam Arrest. Please verify that you are a "
		  "human by clicking the link",
		  NULL, true, 100 },
		{ "Mail delivery failed: returning message to sender", "5.0.0", false, 30 },
		{ "Undeliverable: the message could not be delivered", "5.3.0", true, 40 },
		{ "Undelivered Mail Returned to Sender user unknown", "5.1.1", true, 10 },
		{ "Undelivered Mail Returned to Sender", "5.2.2", true, 22 },
		{ "The mailbox is full", NULL, true, 22 },
		{ "Thanks for your message", NULL, true, 1 },
		{ "Thanks for your message", NULL, false, 30 },
		{ "Delivered", "2.0.0", true, 1 },
		/* A failure report's Status wins over words that look like an auto-reply. */
		{ "vacation", "5.1.1", true, 10 },
	};

	for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
		struct sl_bounce_mdn in = { cases[i].text, cases[i].status,
					    cases[i].is_rcpt_known };
		unsigned got = sl_bounce_classify_mdn(NULL, &in, NULL);

		if (got != cases[i].want)
			fail_msg("\"%s\" (%s): got %u, want %u", cases[i].text,
				 cases[i].status ? cases[i].status : "-", got, cases[i].want);
	}
}

/* ---------------------------------------------------------------- overrides */

static int
parse_text(struct sl_bounce_rules *r, enum sl_bounce_rules_kind kind, const char *text,
	   struct sl_bounce_rules_error *err)
{
	return sl_bounce_rules_parse(r, kind, "test.ovr", text, strlen(text), err);
}

static void
test_overrides(void **state)
{
	static const char smtp[] = "# site rules\r\n"
				   "\r\n"
				   ",50,unavailable\r\n"
				   ",51,blocked by SpamCorp\r\n"
				   "example.net,10,mailbox|unavailable\r\n"
				   " Example.ORG , 22 , over|limit \r\n"
				   ",99,bad words\r\n"
				   ",54,see http://x, y\n"
				   "example.com,20,|";
	static const char mdn[] = "60,gone fishing\n10,user|gone\n";
	struct sl_bounce_rules *r = sl_bounce_rules_new();
	struct sl_bounce_rules_error err;
	struct sl_bounce_why why;
	static const struct {
		const char *domain;
		const char *text;
		enum sl_bounce_cause cause;
		unsigned want;
		unsigned line;
		bool is_domain_rule;
	} cases[] = {
		/* global rule, substring, case-insensitive */
		{ "example.org", "550 5.7.1 Message BLOCKED by SpamCorp filters", 0, 51, 4, false },
		/* the domain's rule beats an earlier global one */
		{ "example.net", "550 5.5.0 mailbox temporarily unavailable", 0, 10, 5, true },
		{ "EXAMPLE.NET", "550 5.5.0 mailbox temporarily unavailable", 0, 10, 5, true },
		{ "other.example", "550 5.5.0 mailbox temporarily unavailable", 0, 50, 3, false },
		{ NULL, "550 5.5.0 mailbox temporarily unavailable", 0, 50, 3, false },
		/* wildcard pieces in order */
		{ "example.org", "552 you are over the size limit", 0, 22, 6, true },
		{ "example.org", "552 size exceeds limit: you are over", 0, 23, 0, false },
		/* custom class */
		{ "x.example", "550 no bad words please", 0, 99, 7, false },
		/* the rule keeps its commas */
		{ "x.example", "550 see http://x, y", 0, 54, 8, false },
		/* "|" alone matches everything for its domain */
		{ "example.com", "250 hm", 0, 20, 9, true },
		/* overrides come before what the caller knows */
		{ "x.example", "550 5.1.2 blocked by SpamCorp", SL_BOUNCE_CAUSE_DNS, 51, 4, false },
		/* nothing matches: the built-in table */
		{ "x.example", "550 5.1.1 user unknown", 0, 10, 0, false },
	};

	assert_int_equal(sl_bounce_rules_add_class(r, 99, "profanity"), 0);
	assert_int_equal(parse_text(r, SL_BOUNCE_RULES_SMTP, smtp, &err), 7);
	assert_int_equal(parse_text(r, SL_BOUNCE_RULES_MDN, mdn, &err), 2);
	assert_int_equal(sl_bounce_rules_count(r), 9);
	for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
		struct sl_bounce_reply in = { .text = cases[i].text,
					      .domain = cases[i].domain,
					      .cause = cases[i].cause };
		unsigned got = sl_bounce_classify(r, &in, &why);

		if (got != cases[i].want)
			fail_msg("%s \"%s\": got %u, want %u",
				 cases[i].domain ? cases[i].domain : "-", cases[i].text, got,
				 cases[i].want);
		if (cases[i].line != 0) {
			assert_int_equal(why.source, SL_BOUNCE_SRC_OVERRIDE);
			assert_int_equal(why.line, cases[i].line);
			assert_int_equal(why.is_domain_rule, cases[i].is_domain_rule);
			assert_string_equal(why.file, "test.ovr");
		} else {
			assert_true(why.source != SL_BOUNCE_SRC_OVERRIDE);
		}
	}
	/* MDN rules apply to out-of-band notices only, and the other way round. */
	{
		struct sl_bounce_mdn in = { "I have gone fishing", NULL, true };
		struct sl_bounce_reply smtp_in = { .text = "550 gone fishing" };

		assert_int_equal(sl_bounce_classify_mdn(r, &in, &why), 60);
		assert_int_equal(why.line, 1);
		in.text = "user has gone";
		assert_int_equal(sl_bounce_classify_mdn(r, &in, &why), 10);
		in.text = "blocked by SpamCorp";
		/* no MDN rule: the built-in table reads "SpamCorp" as spam */
		assert_int_equal(sl_bounce_classify_mdn(r, &in, &why), 51);
		assert_int_equal(sl_bounce_classify(r, &smtp_in, &why), 1);
	}
	assert_string_equal(sl_bounce_rules_class_name(r, 99), "profanity");
	assert_string_equal(sl_bounce_rules_class_name(r, 10), "Invalid Recipient");
	assert_string_equal(sl_bounce_rules_class_name(NULL, 54), "Relay Denied");
	assert_null(sl_bounce_rules_class_name(r, 98));
	sl_bounce_rules_free(r);
	sl_bounce_rules_free(NULL);
}

static void
test_override_errors(void **state)
{
	static const struct {
		enum sl_bounce_rules_kind kind;
		const char *text;
		unsigned line;
		const char *msg; /* a substring of the message */
	} cases[] = {
		{ SL_BOUNCE_RULES_SMTP, ",10,ok\nno comma here\n", 2,
		  "expected domain,bounce_code,rule" },
		{ SL_BOUNCE_RULES_SMTP, "10,user unknown\n", 1,
		  "expected domain,bounce_code,rule" },
		{ SL_BOUNCE_RULES_SMTP, "# c\n\n,abc,rule\n", 3, "\"abc\" is not a number" },
		{ SL_BOUNCE_RULES_SMTP, ",12,rule\n", 1, "12 is neither a built-in class" },
		{ SL_BOUNCE_RULES_SMTP, ",98,rule\n", 1, "custom_classes" },
		{ SL_BOUNCE_RULES_SMTP, ",1000,rule\n", 1, "not a number from 1 to 999" },
		{ SL_BOUNCE_RULES_SMTP, ",10,\n", 1, "the rule is empty" },
		{ SL_BOUNCE_RULES_SMTP, ",10,   \r\n", 1, "the rule is empty" },
		{ SL_BOUNCE_RULES_SMTP, ",,rule\n", 1, "not a number" },
		{ SL_BOUNCE_RULES_SMTP, "exa mple.com,10,x\n", 1, "contains a space" },
		{ SL_BOUNCE_RULES_SMTP, ",10,a\rb\n", 1, "NUL or CR" },
		{ SL_BOUNCE_RULES_MDN, "10,ok\n60\n", 2, "expected bounce_code,rule" },
		{ SL_BOUNCE_RULES_MDN, "x,10,user\n", 1, "\"x\" is not a number" },
	};
	struct sl_bounce_rules *r = sl_bounce_rules_new();
	struct sl_bounce_rules_error err;

	assert_int_equal(parse_text(r, SL_BOUNCE_RULES_SMTP, ",10,kept\n", &err), 1);
	for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
		memset(&err, 0, sizeof(err));
		print_message("case %zu\n", i);
		assert_int_equal(parse_text(r, cases[i].kind, cases[i].text, &err), -EINVAL);
		assert_int_equal(err.line, cases[i].line);
		if (strstr(err.msg, cases[i].msg) == NULL)
			fail_msg("message \"%s\" lacks \"%s\"", err.msg, cases[i].msg);
		/* A refused file leaves the set as it was. */
		assert_int_equal(sl_bounce_rules_count(r), 1);
	}
	/* A line over the limit. */
	{
		char *big = sl_malloc(SL_BOUNCE_MAX_RULE_LINE + 16);

		memset(big, 'a', SL_BOUNCE_MAX_RULE_LINE + 10);
		memcpy(big, ",10,", 4);
		big[SL_BOUNCE_MAX_RULE_LINE + 10] = '\0';
		assert_int_equal(parse_text(r, SL_BOUNCE_RULES_SMTP, big, &err), -EINVAL);
		assert_int_equal(err.line, 1);
		assert_non_null(strstr(err.msg, "line longer than"));
		big[SL_BOUNCE_MAX_RULE_LINE] = '\0';
		assert_int_equal(parse_text(r, SL_BOUNCE_RULES_SMTP, big, NULL), 1);
		sl_free(big);
	}
	/* Empty input is fine. */
	assert_int_equal(sl_bounce_rules_parse(r, SL_BOUNCE_RULES_MDN, NULL, NULL, 0, &err), 0);
	sl_bounce_rules_free(r);
}

static void
test_custom_classes(void **state)
{
	struct sl_bounce_rules *r = sl_bounce_rules_new();

	assert_int_equal(sl_bounce_rules_add_class(r, 99, "profanity"), 0);
	assert_int_equal(sl_bounce_rules_add_class(r, 99, "again"), -EEXIST);
	assert_int_equal(sl_bounce_rules_add_class(r, 10, "mine"), -EEXIST);
	assert_int_equal(sl_bounce_rules_add_class(r, 100, "too big"), -EINVAL);
	assert_int_equal(sl_bounce_rules_add_class(r, 0, "zero"), -EINVAL);
	assert_int_equal(sl_bounce_rules_add_class(r, 98, ""), -EINVAL);
	assert_int_equal(sl_bounce_rules_add_class(r, 98, "a\nb"), -EINVAL);
	assert_int_equal(sl_bounce_rules_add_class(r, 98, NULL), -EINVAL);
	assert_int_equal(sl_bounce_rules_add_class(r, 1 + 1, "two"), 0);
	assert_string_equal(sl_bounce_rules_class_name(r, 2), "two");
	sl_bounce_rules_free(r);
}

/* ---------------------------------------------------------------- suppress list */

static void
test_suppress_list(void **state)
{
	static const char list[] = "bounces@bounces.example.com, @bounces.example.org ,,";
	static const struct {
		const char *addr;
		bool want;
	} cases[] = {
		{ "bounces@bounces.example.com", true },
		{ "BOUNCES@Bounces.Example.COM", true },
		{ "x@bounces.example.org", true },
		{ "x@BOUNCES.example.org", true },
		{ "x@sub.bounces.example.org", false },
		{ "x@bounces.example.com", false },
		{ "bounces@bounces.example.co", false },
		{ "bounces@bounces.example.comm", false },
		{ "", false },
		{ "bounces.example.org", false },
	};

	for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++)
		if (sl_bounce_suppress_list_has(list, cases[i].addr) != cases[i].want)
			fail_msg("%s", cases[i].addr);
	assert_false(sl_bounce_suppress_list_has(NULL, "a@b"));
	assert_false(sl_bounce_suppress_list_has("", "a@b"));
	assert_false(sl_bounce_suppress_list_has("a@b", NULL));
}

/* ---------------------------------------------------------------- bouncelog */

/* Split an ec_logger line at unescaped '@' and undo the escapes; returns the field count. */
static size_t
split_line(const char *s, size_t len, char fields[][4096], size_t max)
{
	size_t n = 0, k = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		assert_true(c != '\n' && c != '\r');
		if (c == '\\') {
			assert_true(i + 1 < len);
			c = s[++i];
			c = c == 'n' ? '\n' : c == 'r' ? '\r' : c;
			assert_true(c == '\n' || c == '\r' || c == '@' || c == '\\');
		} else if (c == '@') {
			fields[n][k] = '\0';
			assert_true(++n < max);
			k = 0;
			continue;
		}
		assert_true(k + 1 < 4096);
		fields[n][k++] = c;
	}
	fields[n][k] = '\0';
	return n + 1;
}

static void
test_bouncelog(void **state)
{
	static char f[20][4096];
	struct sl_buf b = SL_BUF_INIT;
	struct sl_bounce_log l = {
		.when = 1064868656,
		.qid = "91/6D-07914-E67BC044",
		.conn_id = "00/00-04532-A3456B54",
		.rcpt = "johndoe@example.fict",
		.sender = "info@postalengine.com",
		.binding_group = "group-a",
		.binding = "binding-a",
		.stage = SL_BOUNCE_STAGE_OUT_OF_BAND,
		.class_code = SL_BOUNCE_TIMEOUT,
		.size = 1223,
		.ip = "10.0.0.1",
		.text = "554 5.4.7 [internal] exceeded max time without delivery",
	};
	char *text;

	/* Momentum's example line, with sluice's batch id (the queue id). */
	sl_bounce_log_format(&l, &b);
	sl_buf_cstr(&b);
	assert_string_equal(b.data, "1064868656@91/6D-07914-E67BC044@91/6D-07914-E67BC044@"
				    "00/00-04532-A3456B54@B@johndoe@example.fict@info@"
				    "postalengine.com@group-a@binding-a@21@24@1223@10.0.0.1@"
				    "554 5.4.7 [internal] exceeded max time without delivery");
	assert_int_equal(split_line(b.data, b.len, f, 20), 16);

	/* Escapes: '@' in a quoted local part, '\' and line breaks in the text. */
	sl_buf_reset(&b);
	l.batch_id = "00/00-03736-F4101B54";
	l.is_transient = true;
	l.rcpt = "\"a@b\"@example.com";
	l.sender = "";
	l.binding_group = NULL;
	l.binding = NULL;
	l.ip = NULL;
	l.stage = SL_BOUNCE_STAGE_RCPT;
	l.class_code = SL_BOUNCE_SOFT;
	l.text = "451-4.3.0 a\\b\r\n451 4.3.0 c@d";
	sl_bounce_log_format(&l, &b);
	sl_buf_cstr(&b);
	assert_string_equal(b.data,
			    "1064868656@91/6D-07914-E67BC044@00/00-03736-F4101B54@"
			    "00/00-04532-A3456B54@T@\"a\\@b\"@example.com@@@default@default@"
			    "4@20@1223@@451-4.3.0 a\\\\b\\r\\n451 4.3.0 c\\@d");
	assert_int_equal(split_line(b.data, b.len, f, 20), 16);
	assert_string_equal(f[4], "T");
	assert_string_equal(f[5], "\"a@b\"");
	assert_string_equal(f[6], "example.com");
	assert_string_equal(f[7], "");
	assert_string_equal(f[8], "");
	assert_string_equal(f[15], "451-4.3.0 a\\b\r\n451 4.3.0 c@d");

	/* An address without '@' is all local part. */
	sl_buf_reset(&b);
	l.rcpt = "postmaster";
	l.text = NULL;
	sl_bounce_log_format(&l, &b);
	assert_int_equal(split_line(b.data, b.len, f, 20), 16);
	assert_string_equal(f[5], "postmaster");
	assert_string_equal(f[6], "");
	assert_string_equal(f[15], "");

	/* A long text is cut, never inside a UTF-8 sequence. */
	text = sl_malloc(SL_BOUNCE_MAX_LOG_TEXT + 100);
	memset(text, 'a', SL_BOUNCE_MAX_LOG_TEXT - 1);
	memcpy(text + SL_BOUNCE_MAX_LOG_TEXT - 1, "\xc3\xa9tail", 7);
	l.text = text;
	sl_buf_reset(&b);
	sl_bounce_log_format(&l, &b);
	assert_int_equal(split_line(b.data, b.len, f, 20), 16);
	assert_int_equal(strlen(f[15]), SL_BOUNCE_MAX_LOG_TEXT - 1);
	memset(text, 'b', SL_BOUNCE_MAX_LOG_TEXT + 10);
	text[SL_BOUNCE_MAX_LOG_TEXT + 10] = '\0';
	sl_buf_reset(&b);
	sl_bounce_log_format(&l, &b);
	split_line(b.data, b.len, f, 20);
	assert_int_equal(strlen(f[15]), SL_BOUNCE_MAX_LOG_TEXT);
	sl_free(text);
	sl_buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),          cmocka_unit_test(test_classify),
		cmocka_unit_test(test_classify_why),   cmocka_unit_test(test_classify_mdn),
		cmocka_unit_test(test_overrides),      cmocka_unit_test(test_override_errors),
		cmocka_unit_test(test_custom_classes), cmocka_unit_test(test_suppress_list),
		cmocka_unit_test(test_bouncelog),
	};

	return cmocka_run_group_tests_name("bounce", tests, NULL, NULL);
}
