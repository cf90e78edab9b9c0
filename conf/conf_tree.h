/*
 * conf/conf_tree.h - the parse tree of an ecelerity.conf file set.
 *
 * conf_parse.c turns text (plus every file it includes) into this tree; the
 * schema pass (conf_snapshot.c) then checks it and builds a typed snapshot.
 * The tree keeps exactly what was written: names as spelled (compare them
 * with strcasecmp), strings unescaped, and the file:line:col of every node so
 * each later diagnostic can point at the text.
 *
 * Grammar (the reference, ../shared/spec/ecelerity.conf-reference.txt, wins):
 *
 *   file     := stanza*
 *   stanza   := 'include' (STRING | WORD)           spliced in place
 *             | NAME '=' (value | bracket)          custom_classes = [ 99 = "x" ]
 *             | NAME bracket                        read as NAME = bracket:
 *                                                   Trap_Destination [ Port = 162 ]
 *             | NAME arg* attrs? '{' stanza* '}'    Domain "x" { }, ec_logger { },
 *                                                   Logger logging/ec_logger ec_logger { }
 *   arg      := WORD | STRING
 *   value    := WORD | STRING | list
 *   list     := '(' item* ')'
 *   item     := (WORD | STRING) attrs? bracket?     *:25 <proto=ipv4> [ acl ],
 *                                                   personality [ k = v ], continue
 *   attrs    := '<' pair* '>'
 *   bracket  := '[' pair* ']'
 *   pair     := (WORD | STRING) '=' value
 *
 * Ownership: everything hangs off one struct sl_conf_tree and lives in its
 * arena; sl_conf_tree_free() releases it all.  A finished tree is read-only.
 * Threads: built and read by one thread (the config thread).
 */
#ifndef SL_CONF_CONF_TREE_H
#define SL_CONF_CONF_TREE_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf_err.h"
#include "engine/arena.h"

enum sl_conf_vkind {
	SL_CONF_WORD,   /* bare token: 300, true, *:25, /var/log/x, client1.com */
	SL_CONF_STRING, /* "quoted", escapes resolved */
	SL_CONF_LIST,   /* ( item ... ) */
	SL_CONF_PAIRS,  /* [ key = value ... ]: only a stanza's value */
};

struct sl_conf_item;
struct sl_conf_pair;

struct sl_conf_value {
	enum sl_conf_vkind kind;
	struct sl_conf_loc loc;
	const char *text;           /* WORD/STRING: NUL-terminated; NULL for LIST/PAIRS */
	size_t text_len;            /* WORD/STRING: bytes before the NUL */
	struct sl_conf_item *items; /* LIST: array of item_cnt */
	size_t item_cnt;
	struct sl_conf_pair *pairs; /* PAIRS: array of pair_cnt */
	size_t pair_cnt;
};

/* One element of a list: an address, a property, a word or a string. */
struct sl_conf_item {
	struct sl_conf_loc loc;
	const char *text;           /* as written (unescaped if a string) */
	bool is_string;             /* was quoted */
	struct sl_conf_pair *attrs; /* <name=value ...>: array of attr_cnt */
	size_t attr_cnt;
	bool has_attrs;              /* '<' '>' present, even if empty */
	struct sl_conf_pair *params; /* [ key = value ... ]: array of param_cnt */
	size_t param_cnt;
	bool has_params; /* '[' ']' present, even if empty */
	/* NAME ( ... ) inside an ACL entry (relay_hosts ( 1.2.3.4 )): the list, in
	 * the arena; NULL without one.  Lists elsewhere never hold one. */
	struct sl_conf_value *list;
};

/* key = value inside <...> or [...]. */
struct sl_conf_pair {
	struct sl_conf_loc loc; /* of the key */
	const char *key;
	bool key_is_string;
	struct sl_conf_value value;
};

enum sl_conf_skind {
	SL_CONF_ASSIGN, /* NAME = value */
	SL_CONF_BLOCK,  /* NAME arg* attrs? { stanza* } */
};

struct sl_conf_stanza {
	enum sl_conf_skind kind;
	struct sl_conf_loc loc;     /* of the name */
	const char *name;           /* as written; compare with strcasecmp */
	struct sl_conf_value value; /* ASSIGN only */
	struct sl_conf_value *args; /* BLOCK: WORD/STRING values, array of arg_cnt */
	size_t arg_cnt;
	struct sl_conf_pair *attrs; /* BLOCK: <...> before '{', array of attr_cnt */
	size_t attr_cnt;
	struct sl_conf_stanza *children; /* BLOCK: array of child_cnt */
	size_t child_cnt;
};

struct sl_conf_tree {
	struct sl_arena arena;          /* owns every node, string and file name */
	struct sl_conf_stanza *stanzas; /* top level (includes spliced in), array */
	size_t stanza_cnt;
	const char **files; /* files read, in order, as opened (arena); not a buffer */
	size_t file_cnt;
};

/*
 * Input limits: a file over this size, includes nested deeper, ( [ < {
 * nested deeper, more files read in one parse (a file counts again each time
 * it is included), or more bytes read in one parse, are errors.
 */
#define SL_CONF_MAX_FILE_LEN      (64u * 1024 * 1024)
#define SL_CONF_MAX_INCLUDE_DEPTH 32
#define SL_CONF_MAX_NEST_DEPTH    64
#define SL_CONF_MAX_FILES         1024
#define SL_CONF_MAX_TOTAL_LEN     (256u * 1024 * 1024)

/*
 * Parse the file at `path` (a plain path or a file:// URI) and everything it
 * includes.  Relative include paths resolve against the including file's
 * directory.  An include names a file, a file:///abs/path URI (no percent
 * decoding), or a directory, whose regular files are read in strcmp() order
 * skipping names that start with '.' and sub-directories; any other URI
 * scheme (eccmgr://, http://) and include loops are errors.  Returns a new
 * tree, or NULL with at least one diagnostic added to `errs` (the parse
 * stops at the first error).  The caller owns the tree.
 */
struct sl_conf_tree *sl_conf_parse_file(const char *path, struct sl_conf_errors *errs);

/*
 * Parse `len` bytes of `text` (not necessarily NUL-terminated; borrowed for
 * the call) as if read from a file named `name`; the text itself is not
 * listed in tree->files.  Relative includes resolve against `base_dir`
 * (NULL: the current directory).  Same ownership and errors as
 * sl_conf_parse_file().
 */
struct sl_conf_tree *sl_conf_parse_buffer(const char *name, const char *base_dir, const char *text,
					  size_t len, struct sl_conf_errors *errs);

/* Free a tree and everything in it.  NULL is fine. */
void sl_conf_tree_free(struct sl_conf_tree *tree);

#endif /* SL_CONF_CONF_TREE_H */
