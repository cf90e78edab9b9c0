/*
 * stages/spool_int.h - private declarations of the spool stage: the batch
 * of messages that `spool import` (stages/spool_import.c) hands to a spool
 * thread to be made durable in this node's spool and queued for delivery.
 *
 * Threads: a batch is filled by the import thread, handled by one spool
 * thread (which appends its messages, commits them with the rest of its
 * group, sends the durable ones to delivery and then calls
 * spool_import_done), and read back by the import thread once is_done is
 * set under the importer's lock.
 * Ownership: the batch belongs to the import thread, but its messages
 * belong to the spool thread from sl_send() on: each goes to delivery or
 * is freed there.
 */
#ifndef SL_STAGES_SPOOL_INT_H
#define SL_STAGES_SPOOL_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/stage.h"
#include "spool/msg.h"

#define SPOOL_IMPORT_MAGIC 0x5b0019b7u

/* Event types of the spool stage's own (beside SL_MSG_EV_SPOOL and SL_EV_SPOOL_PROGRESS). */
enum spool_ev {
	SPOOL_EV_IMPORT = 0x400,  /* import thread -> a spool thread: struct spool_import_batch */
	SPOOL_EV_COMPACT = 0x401, /* a spool thread -> itself: another compaction round */
};

struct spool_import_item {
	struct sl_msg *msg;       /* owned by the spool thread once sent; NULL after */
	struct sl_spool_loc from; /* where it is in the spool being imported */
	char from_qid[SL_MSG_QID_LEN];
	int result; /* set by the spool thread: 0 durable and queued, or -errno */
};

struct spool_import_batch {
	struct sl_event ev; /* SPOOL_EV_IMPORT */
	unsigned magic;     /* SPOOL_IMPORT_MAGIC */
	struct sl_stage *deliver;
	struct spool_import_item *items; /* owned by the batch */
	size_t cnt;
	bool is_done; /* under the importer's lock: the spool thread is finished with it */
};

/*
 * The spool thread has set every item's result and will not touch `b`
 * again (called on that thread, after its group commit).  In spool_import.c.
 */
void spool_import_done(struct spool_import_batch *b);

/* Hand a durable message to the delivery thread of its first recipient's domain. */
void spool_to_deliver(struct sl_stage *deliver, struct sl_msg *m);

/* SpoolBase of the open spool (to refuse importing it); NULL when none is open. */
const char *spool_stage_dir(void);

#endif /* SL_STAGES_SPOOL_INT_H */
