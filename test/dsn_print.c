/*
 * test/dsn_print.c - print one DSN built by proto/dsn.c, for test/check-dsn.sh.
 *
 * Usage: dsn_print headers|all|none|utf8|multi
 * Writes the DSN for a fixed failed message to standard output, so that an
 * independent MIME parser (Python's email package) can read it.  The
 * scenarios: the header section returned (Momentum's default), the whole
 * message, nothing, an SMTPUTF8 message with a non-ASCII recipient, and
 * three recipients (failed, delayed, failed locally).
 *
 * Threads: one.  Parses only its argument.  Ownership: exits after writing.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "engine/buf.h"
#include "proto/dsn.h"

static const char orig[] = "Return-Path: <alice@example.org>\r\n"
			   "From: Alice <alice@example.org>\r\n"
			   "To: Bob <bob@example.net>\r\n"
			   "Subject: hello\r\n"
			   "Message-ID: <m1@example.org>\r\n"
			   "MIME-Version: 1.0\r\n"
			   "Content-Type: text/plain; charset=utf-8\r\n"
			   "Content-Transfer-Encoding: 8bit\r\n"
			   "\r\n"
			   "Hi Bob, Gr\xc3\xbc\xc3\x9f"
			   "e.\r\n";

static const char orig_utf8[] = "From: J\xc3\xbcrgen <j\xc3\xbcrgen@example.org>\r\n"
				"To: \xe7\x94\xa8\xe6\x88\xb7@example.net\r\n"
				"Subject: Gr\xc3\xbc\xc3\x9f"
				"e\r\n"
				"\r\n"
				"Hallo\r\n";

int
main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "headers";
	struct sl_dsn_rcpt r[3] = {
		{
			.addr = "bob@example.net",
			.action = SL_DSN_ACTION_FAILED,
			.status = "5.1.1",
			.remote_mta = "mx1.example.net",
			.diagnostic =
				"550-5.1.1 The email account that you tried to reach does not "
				"exist. Please try 550-5.1.1 double-checking the recipient's "
				"email address for typos or 550-5.1.1 unnecessary spaces. 550 "
				"5.1.1 https://support.google.com/mail/?p=NoSuchUser - gsmtp",
			.is_smtp_diagnostic = true,
			.last_attempt = 1709639940,
		},
		{
			.addr = "carol@example.net",
			.orcpt = "Carol@example.net",
			.action = SL_DSN_ACTION_DELAYED,
			.status = "4.2.2",
			.remote_mta = "192.0.2.25",
			.diagnostic = "452 4.2.2 Mailbox full",
			.is_smtp_diagnostic = true,
			.last_attempt = 1709639970,
			.will_retry_until = 1709985600,
		},
		{
			.addr = "dave@nx.example",
			.action = SL_DSN_ACTION_FAILED,
			.status = "5.1.2",
			.diagnostic = "Host or domain name not found (NXDOMAIN)",
		},
	};
	struct iovec iov[2] = { { (void *)orig, 60 }, { (void *)(orig + 60), sizeof(orig) - 61 } };
	struct sl_dsn_msg m = {
		.reporting_mta = "mta.example.com",
		.to = "alice@example.org",
		.unique_id = "6926A1B2-0000000000000F1B",
		.qid = "6926A1B2-0000000000000F1A",
		.arrival = 1709553600,
		.now = 1709640000,
		.rcpts = r,
		.rcpt_cnt = 1,
		.orig = iov,
		.orig_cnt = 2,
		.inline_original = SL_DSN_INLINE_HEADERS,
	};
	struct sl_buf out = SL_BUF_INIT;
	int rc;

	if (strcmp(what, "all") == 0) {
		m.inline_original = SL_DSN_INLINE_ALL;
	} else if (strcmp(what, "none") == 0) {
		m.inline_original = SL_DSN_INLINE_NONE;
	} else if (strcmp(what, "multi") == 0) {
		m.rcpt_cnt = 3;
	} else if (strcmp(what, "utf8") == 0) {
		iov[0] = (struct iovec){ (void *)orig_utf8, sizeof(orig_utf8) - 1 };
		m.orig_cnt = 1;
		m.is_smtputf8 = true;
		m.inline_original = SL_DSN_INLINE_ALL;
		r[0].addr = "\xe7\x94\xa8\xe6\x88\xb7@example.net";
		r[0].status = "5.1.1";
		r[0].diagnostic = "550 5.1.1 \xe7\x94\xa8\xe6\x88\xb7 unknown";
	} else if (strcmp(what, "headers") != 0) {
		fprintf(stderr, "usage: dsn_print headers|all|none|utf8|multi\n");
		return 2;
	}
	if ((rc = sl_dsn_build(&m, &out, NULL)) < 0) {
		fprintf(stderr, "dsn_print: sl_dsn_build: %d\n", rc);
		return 1;
	}
	if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0)
		return 1;
	sl_buf_free(&out);
	return 0;
}
