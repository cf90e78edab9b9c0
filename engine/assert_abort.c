/*
 * engine/assert_abort.c - the assertion report of programs without the
 * daemon's log: the ECStream client library (libsluice-ecstream.a) links
 * this; sluiced and the tools linking libsluice.a get engine/log.c's, which
 * flushes the paniclog first.  The symbol is weak so that, should both be
 * linked, the log's wins.
 *
 * Threads: any.  Parses nothing.  Owns nothing.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "engine/assert.h"

__attribute__((weak)) void
sl__assert_fail(const char *expr, const char *file, int line, const char *func)
{
	fprintf(stderr, "assertion failed: %s at %s:%d (%s)\n", expr, file, line, func);
	abort();
}
