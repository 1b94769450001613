/*
 * pickle_reader.c - a restricted unpickler for PyTorch state dicts.
 *
 * A small stack machine over the opcodes that torch.save (protocol 2, and
 * protocol 4 when asked) emits for a state dict.  Values live in a chain of
 * allocations freed together at the end; nothing recurses over values, so
 * cyclic or deeply nested pickles cannot exhaust the C stack.  Globals are
 * resolved against an allow-list and only ever interpreted, never called.
 */
#include "pickle_reader.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Limits on what one pickle may make the reader hold. */
#define MAX_STACK_DEPTH (1u << 20)
#define MAX_MARK_DEPTH 4096u
#define MAX_MEMO_ENTRIES (1u << 20)
#define MAX_STRING_BYTES (64u * 1024u)
#define MAX_GLOBAL_PART 256u
#define MAX_HELD_BYTES (256u * 1024u * 1024u)

/* Opcodes (pickle protocols 0-5 share one table). */
enum
{
	OP_MARK = '(',
	OP_STOP = '.',
	OP_BINFLOAT = 'G',
	OP_BININT = 'J',
	OP_BININT1 = 'K',
	OP_BININT2 = 'M',
	OP_NONE = 'N',
	OP_BINPERSID = 'Q',
	OP_REDUCE = 'R',
	OP_BINUNICODE = 'X',
	OP_EMPTY_LIST = ']',
	OP_APPEND = 'a',
	OP_BUILD = 'b',
	OP_GLOBAL = 'c',
	OP_APPENDS = 'e',
	OP_BINGET = 'h',
	OP_LONG_BINGET = 'j',
	OP_BINPUT = 'q',
	OP_LONG_BINPUT = 'r',
	OP_SETITEM = 's',
	OP_TUPLE = 't',
	OP_SETITEMS = 'u',
	OP_EMPTY_DICT = '}',
	OP_EMPTY_TUPLE = ')',
	OP_PROTO = 0x80,
	OP_TUPLE1 = 0x85,
	OP_TUPLE2 = 0x86,
	OP_TUPLE3 = 0x87,
	OP_NEWTRUE = 0x88,
	OP_NEWFALSE = 0x89,
	OP_LONG1 = 0x8a,
	OP_LONG4 = 0x8b,
	OP_SHORT_BINUNICODE = 0x8c,
	OP_BINUNICODE8 = 0x8d,
	OP_STACK_GLOBAL = 0x93,
	OP_MEMOIZE = 0x94,
	OP_FRAME = 0x95
};

typedef enum value_kind
{
	V_NONE,
	V_BOOL,
	V_INT,
	V_FLOAT,
	V_STRING,
	V_TUPLE,
	V_LIST,
	V_DICT,						/* dict or OrderedDict: key/value pairs in order */
	V_GLOBAL,
	V_STORAGE,
	V_TENSOR
} value_kind;

/* The globals a state dict may name; everything else is forbidden. */
typedef enum global_kind
{
	G_ORDERED_DICT,
	G_REBUILD_TENSOR_V2,
	G_REBUILD_PARAMETER,
	G_STORAGE_TYPE
} global_kind;

static const struct
{
	const char *module;
	const char *name;
	global_kind kind;
	groma_st_dtype dtype;		/* for storage types */
}			allowed_globals[] = {
	{"collections", "OrderedDict", G_ORDERED_DICT, GROMA_ST_U8},
	{"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2, GROMA_ST_U8},
	{"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER, GROMA_ST_U8},
	{"torch", "FloatStorage", G_STORAGE_TYPE, GROMA_ST_F32},
	{"torch", "HalfStorage", G_STORAGE_TYPE, GROMA_ST_F16},
	{"torch", "BFloat16Storage", G_STORAGE_TYPE, GROMA_ST_BF16},
	{"torch", "DoubleStorage", G_STORAGE_TYPE, GROMA_ST_F64},
	{"torch", "LongStorage", G_STORAGE_TYPE, GROMA_ST_I64},
	{"torch", "IntStorage", G_STORAGE_TYPE, GROMA_ST_I32},
	{"torch", "ShortStorage", G_STORAGE_TYPE, GROMA_ST_I16},
	{"torch", "CharStorage", G_STORAGE_TYPE, GROMA_ST_I8},
	{"torch", "ByteStorage", G_STORAGE_TYPE, GROMA_ST_U8},
	{"torch", "BoolStorage", G_STORAGE_TYPE, GROMA_ST_BOOL},
	/* An untyped storage counts bytes; torch 2.x names it by either module. */
	{"torch", "UntypedStorage", G_STORAGE_TYPE, GROMA_ST_U8},
	{"torch.storage", "UntypedStorage", G_STORAGE_TYPE, GROMA_ST_U8},
};

#define ALLOWED_GLOBAL_COUNT (sizeof(allowed_globals) / sizeof(allowed_globals[0]))

typedef struct value value;

/* What _rebuild_tensor_v2 produced. */
typedef struct tensor_info
{
	value	   *storage;
	int64_t		offset;
	int			ndim;
	int64_t		shape[GROMA_PICKLE_MAX_DIMS];
	int64_t		stride[GROMA_PICKLE_MAX_DIMS];
} tensor_info;

struct value
{
	value_kind	kind;
	value	   *next_allocated;
	union
	{
		int64_t		integer;	/* V_BOOL, V_INT */
		double		real;		/* V_FLOAT */
		struct
		{
			const char *text;	/* NUL-terminated, stored after the value */
			size_t		len;
		}			string;
		struct
		{
			value	  **items;	/* V_DICT: key, value, key, value, ... */
			size_t		len;
			size_t		cap;
		}			seq;
		struct
		{
			global_kind kind;
			groma_st_dtype dtype;
		}			global;
		struct
		{
			const char *key;	/* text of a string value (lives as long) */
			int64_t		numel;
			groma_st_dtype dtype;
		}			storage;
		tensor_info *tensor;	/* stored after the value */
	}			u;
};

typedef struct reader
{
	const uint8_t *data;
	size_t		size;
	size_t		pos;
	size_t		op_pos;			/* offset of the opcode being run, for messages */
	const char *label;
	value	   *allocated;		/* chain of every value */
	size_t		held_bytes;
	value	  **stack;
	size_t		depth;
	size_t		stack_cap;
	size_t		marks[MAX_MARK_DEPTH];
	size_t		mark_count;
	value	  **memo;
	size_t		memo_cap;
	size_t		memo_len;		/* distinct keys set, as Python's len(memo) */
	size_t		memo_limit;
	value	   *result;
} reader;

/* Returns the name of a value kind for messages. */
static const char *
kind_name(value_kind kind)
{
	static const char *const names[] = {"None", "bool", "int", "float", "str", "tuple",
	"list", "dict", "global", "storage", "tensor"};

	return names[kind];
}

/* Returns a failure for malformed bytes at the current opcode. */
static groma_status
malformed(const reader *r, const char *what)
{
	return groma_error(GROMA_ERR_FORMAT, "\"%s\": %s at pickle offset %zu", r->label, what,
					   r->op_pos);
}

/* Accounts for bytes more of held memory; GROMA_ERR_LIMIT past MAX_HELD_BYTES. */
static groma_status
hold_bytes(reader *r, size_t bytes)
{
	if (bytes > MAX_HELD_BYTES - r->held_bytes)
		return groma_error(GROMA_ERR_LIMIT, "\"%s\": pickle needs more than %u MiB to unpickle",
						   r->label, MAX_HELD_BYTES >> 20);
	r->held_bytes += bytes;
	return groma_ok();
}

/* Allocates a value of kind with extra trailing bytes, chained for freeing; *out NULL on failure. */
static groma_status
new_value(reader *r, value_kind kind, size_t extra, value **out)
{
	value	   *v;
	groma_status st = hold_bytes(r, sizeof(value) + extra);

	*out = NULL;
	if (st.code != GROMA_OK)
		return st;
	v = calloc(1, sizeof(value) + extra);
	if (v == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "\"%s\": out of memory unpickling", r->label);
	v->kind = kind;
	v->next_allocated = r->allocated;
	r->allocated = v;
	*out = v;
	return groma_ok();
}

/* Frees every value the reader allocated and its stacks. */
static void
free_reader(reader *r)
{
	value	   *v = r->allocated;

	while (v != NULL)
	{
		value	   *next = v->next_allocated;

		if (v->kind == V_TUPLE || v->kind == V_LIST || v->kind == V_DICT)
			free(v->u.seq.items);
		free(v);
		v = next;
	}
	free(r->stack);
	free(r->memo);
}

/* Ensures a sequence can take extra more items. */
static groma_status
seq_reserve(reader *r, value *seq, size_t extra)
{
	size_t		cap = seq->u.seq.cap;
	value	  **items;
	groma_status st;

	if (extra <= cap - seq->u.seq.len)
		return groma_ok();
	while (extra > cap - seq->u.seq.len)
		cap = cap ? cap * 2 : 8;
	st = hold_bytes(r, (cap - seq->u.seq.cap) * sizeof(value *));
	if (st.code != GROMA_OK)
		return st;
	items = realloc(seq->u.seq.items, cap * sizeof(value *));
	if (items == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "\"%s\": out of memory unpickling", r->label);
	seq->u.seq.items = items;
	seq->u.seq.cap = cap;
	return groma_ok();
}

/* Returns the stack index below which the current opcode may not pop (the last mark). */
static size_t
fence(const reader *r)
{
	return r->mark_count ? r->marks[r->mark_count - 1] : 0;
}

/* Pushes v; GROMA_ERR_LIMIT past MAX_STACK_DEPTH. */
static groma_status
push(reader *r, value *v)
{
	if (r->depth == r->stack_cap)
	{
		size_t		cap = r->stack_cap ? r->stack_cap * 2 : 64;
		value	  **stack;

		if (r->depth >= MAX_STACK_DEPTH)
			return groma_error(GROMA_ERR_LIMIT, "\"%s\": pickle stack deeper than %u", r->label,
							   MAX_STACK_DEPTH);
		stack = realloc(r->stack, cap * sizeof(value *));
		if (stack == NULL)
			return groma_error(GROMA_ERR_NO_MEMORY, "\"%s\": out of memory unpickling", r->label);
		r->stack = stack;
		r->stack_cap = cap;
	}
	r->stack[r->depth++] = v;
	return groma_ok();
}

/* Makes a value of kind and pushes it; *out (when not NULL) receives it. */
static groma_status
push_new(reader *r, value_kind kind, size_t extra, value **out)
{
	value	   *v;
	groma_status st = new_value(r, kind, extra, &v);

	if (st.code == GROMA_OK)
		st = push(r, v);
	if (out != NULL)
		*out = v;
	return st;
}

/* Pops the top value into *out; a failure when only marked items (or none) remain. */
static groma_status
pop(reader *r, value **out)
{
	if (r->depth <= fence(r))
		return malformed(r, "stack underflow");
	*out = r->stack[--r->depth];
	return groma_ok();
}

/* Points *out at the top value without popping it. */
static groma_status
peek(const reader *r, value **out)
{
	if (r->depth <= fence(r))
		return malformed(r, "stack underflow");
	*out = r->stack[r->depth - 1];
	return groma_ok();
}

/* Removes the last mark; *start is the stack index of the first item above it. */
static groma_status
pop_mark(reader *r, size_t *start)
{
	if (r->mark_count == 0)
		return malformed(r, "no MARK for this opcode");
	*start = r->marks[--r->mark_count];
	return groma_ok();
}

/* Points *bytes at the next n input bytes and advances; a failure when the pickle ends first. */
static groma_status
take(reader *r, size_t n, const uint8_t **bytes)
{
	if (n > r->size - r->pos)
		return malformed(r, "pickle ends inside an opcode");
	*bytes = r->data + r->pos;
	r->pos += n;
	return groma_ok();
}

/* Reads an n-byte little-endian unsigned argument. */
static groma_status
take_uint(reader *r, size_t n, uint64_t *out)
{
	const uint8_t *b = NULL;
	groma_status st = take(r, n, &b);

	*out = 0;
	if (st.code != GROMA_OK)
		return st;
	for (size_t i = n; i > 0; i--)
		*out = (*out << 8) | b[i - 1];
	return groma_ok();
}

/* Pushes a new string value holding len bytes from text; refuses NUL bytes and long strings. */
static groma_status
push_string(reader *r, const uint8_t *text, size_t len)
{
	value	   *v;
	char	   *copy;
	groma_status st;

	if (memchr(text, '\0', len) != NULL)
		return malformed(r, "string with a NUL character");
	st = push_new(r, V_STRING, len + 1, &v);
	if (st.code != GROMA_OK)
		return st;
	copy = (char *) (v + 1);
	memcpy(copy, text, len);
	copy[len] = '\0';
	v->u.string.text = copy;
	v->u.string.len = len;
	return groma_ok();
}

/* Runs BINUNICODE, SHORT_BINUNICODE or BINUNICODE8 with a length field of width bytes. */
static groma_status
op_unicode(reader *r, size_t width)
{
	uint64_t	len;
	const uint8_t *text = NULL;
	groma_status st = take_uint(r, width, &len);

	if (st.code != GROMA_OK)
		return st;
	if (len > MAX_STRING_BYTES)
		return groma_error(GROMA_ERR_LIMIT, "\"%s\": pickle string of %llu bytes at offset %zu exceeds %u",
						   r->label, (unsigned long long) len, r->op_pos, MAX_STRING_BYTES);
	st = take(r, (size_t) len, &text);
	if (st.code != GROMA_OK)
		return st;
	return push_string(r, text, (size_t) len);
}

/* Pushes an int value. */
static groma_status
push_int(reader *r, value_kind kind, int64_t integer)
{
	value	   *v;
	groma_status st = push_new(r, kind, 0, &v);

	if (st.code == GROMA_OK)
		v->u.integer = integer;
	return st;
}

/* Runs LONG1/LONG4: a little-endian two's complement integer of up to 8 bytes. */
static groma_status
op_long(reader *r, size_t width)
{
	uint64_t	n,
				bits = 0;
	const uint8_t *b = NULL;
	groma_status st = take_uint(r, width, &n);

	if (st.code != GROMA_OK)
		return st;
	if (n > 8)
		return groma_error(GROMA_ERR_LIMIT, "\"%s\": pickle integer of %llu bytes at offset %zu is too large",
						   r->label, (unsigned long long) n, r->op_pos);
	st = take(r, (size_t) n, &b);
	if (st.code != GROMA_OK)
		return st;
	for (size_t i = (size_t) n; i > 0; i--)
		bits = (bits << 8) | b[i - 1];
	if (n > 0 && n < 8 && (b[n - 1] & 0x80))
		bits |= ~(uint64_t) 0 << (8 * n);	/* sign-extend */
	return push_int(r, V_INT, (int64_t) bits);
}

/* Runs BINFLOAT: an 8-byte big-endian IEEE double. */
static groma_status
op_binfloat(reader *r)
{
	const uint8_t *b = NULL;
	uint64_t	bits = 0;
	value	   *v;
	groma_status st = take(r, 8, &b);

	if (st.code != GROMA_OK)
		return st;
	for (int i = 0; i < 8; i++)
		bits = (bits << 8) | b[i];
	st = push_new(r, V_FLOAT, 0, &v);
	if (st.code == GROMA_OK)
		memcpy(&v->u.real, &bits, sizeof(double));
	return st;
}

/* Copies up to 60 characters of text into buf for a message, replacing unprintable ones. */
static const char *
printable(const char *text, char *buf, size_t buflen)
{
	size_t		n = 0;

	for (; text[n] != '\0' && n + 1 < buflen && n < 60; n++)
		buf[n] = (text[n] >= 0x20 && text[n] < 0x7f && text[n] != '"') ? text[n] : '?';
	buf[n] = '\0';
	return buf;
}

/* Resolves module.name against the allow-list and pushes it; anything else is a clear refusal. */
static groma_status
push_global(reader *r, const char *module, const char *name)
{
	char		mbuf[64],
				nbuf[64];

	for (size_t i = 0; i < ALLOWED_GLOBAL_COUNT; i++)
		if (strcmp(allowed_globals[i].module, module) == 0 &&
			strcmp(allowed_globals[i].name, name) == 0)
		{
			value	   *v;
			groma_status st = push_new(r, V_GLOBAL, 0, &v);

			if (st.code == GROMA_OK)
			{
				v->u.global.kind = allowed_globals[i].kind;
				v->u.global.dtype = allowed_globals[i].dtype;
			}
			return st;
		}
	return groma_error(GROMA_ERR_FORMAT, "\"%s\": forbidden pickle global \"%s.%s\" at offset %zu",
					   r->label, printable(module, mbuf, sizeof(mbuf)),
					   printable(name, nbuf, sizeof(nbuf)), r->op_pos);
}

/* Reads one newline-terminated GLOBAL argument into buf. */
static groma_status
take_line(reader *r, char *buf, size_t buflen)
{
	size_t		n = 0;

	while (r->pos < r->size && r->data[r->pos] != '\n')
	{
		if (n + 1 >= buflen || r->data[r->pos] == '\0')
			return malformed(r, "GLOBAL argument too long or with a NUL character");
		buf[n++] = (char) r->data[r->pos++];
	}
	if (r->pos >= r->size)
		return malformed(r, "pickle ends inside a GLOBAL argument");
	r->pos++;					/* the newline */
	buf[n] = '\0';
	return groma_ok();
}

/* Runs GLOBAL: "module\nname\n". */
static groma_status
op_global(reader *r)
{
	char		module[MAX_GLOBAL_PART],
				name[MAX_GLOBAL_PART];
	groma_status st = take_line(r, module, sizeof(module));

	if (st.code == GROMA_OK)
		st = take_line(r, name, sizeof(name));
	if (st.code != GROMA_OK)
		return st;
	return push_global(r, module, name);
}

/* Runs STACK_GLOBAL: pops name and module strings. */
static groma_status
op_stack_global(reader *r)
{
	value	   *name,
			   *module;
	groma_status st = pop(r, &name);

	if (st.code == GROMA_OK)
		st = pop(r, &module);
	if (st.code != GROMA_OK)
		return st;
	if (module->kind != V_STRING || name->kind != V_STRING)
		return malformed(r, "STACK_GLOBAL without two strings");
	return push_global(r, module->u.string.text, name->u.string.text);
}

/* Runs TUPLE (count < 0: everything above the mark) or TUPLE1..3 (count items). */
static groma_status
op_tuple(reader *r, int count)
{
	size_t		start = 0,
				n;
	value	   *t;
	groma_status st;

	if (count < 0)
	{
		st = pop_mark(r, &start);
		if (st.code != GROMA_OK)
			return st;
	}
	else
	{
		if (r->depth - fence(r) < (size_t) count)
			return malformed(r, "stack underflow");
		start = r->depth - (size_t) count;
	}
	n = r->depth - start;
	st = new_value(r, V_TUPLE, 0, &t);
	if (st.code == GROMA_OK)
		st = seq_reserve(r, t, n ? n : 1);
	if (st.code != GROMA_OK)
		return st;
	if (n > 0)
		memcpy(t->u.seq.items, r->stack + start, n * sizeof(value *));
	t->u.seq.len = n;
	r->depth = start;
	return push(r, t);
}

/* Appends the items stack[start..depth) to the list or dict target and drops them. */
static groma_status
extend_container(reader *r, value *target, value_kind want, size_t start)
{
	size_t		n = r->depth - start;
	groma_status st;

	if (target->kind != want)
		return malformed(r, want == V_DICT ? "SETITEM(S) on something that is not a dict"
						 : "APPEND(S) on something that is not a list");
	if (want == V_DICT && n % 2 != 0)
		return malformed(r, "SETITEMS with an odd number of items");
	st = seq_reserve(r, target, n);
	if (st.code != GROMA_OK)
		return st;
	if (n > 0)
		memcpy(target->u.seq.items + target->u.seq.len, r->stack + start, n * sizeof(value *));
	target->u.seq.len += n;
	r->depth = start;
	return groma_ok();
}

/* Runs SETITEM/APPEND (one item: pairs = 2 or 1) on the container below them. */
static groma_status
op_add_one(reader *r, value_kind want, size_t items)
{
	if (r->depth - fence(r) < items + 1)
		return malformed(r, "stack underflow");
	return extend_container(r, r->stack[r->depth - items - 1], want, r->depth - items);
}

/* Runs SETITEMS/APPENDS: everything above the mark goes into the container below it. */
static groma_status
op_add_marked(reader *r, value_kind want)
{
	size_t		start = 0;
	groma_status st = pop_mark(r, &start);

	if (st.code != GROMA_OK)
		return st;
	if (start == 0 || start - 1 < fence(r))
		return malformed(r, "stack underflow");
	return extend_container(r, r->stack[start - 1], want, start);
}

/* Checks that v is a tuple of n non-negative ints and copies them to out. */
static groma_status
int_tuple(const reader *r, const value *v, const char *what, int64_t *out, int *n)
{
	if (v->kind != V_TUPLE)
		return malformed(r, what);
	if (v->u.seq.len > GROMA_PICKLE_MAX_DIMS)
		return groma_error(GROMA_ERR_UNSUPPORTED,
						   "\"%s\": tensor with %zu dimensions at pickle offset %zu (groma takes at most %d)",
						   r->label, v->u.seq.len, r->op_pos, GROMA_PICKLE_MAX_DIMS);
	for (size_t i = 0; i < v->u.seq.len; i++)
	{
		const value *item = v->u.seq.items[i];

		if (item->kind != V_INT || item->u.integer < 0)
			return malformed(r, what);
		out[i] = item->u.integer;
	}
	*n = (int) v->u.seq.len;
	return groma_ok();
}

/* Interprets _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]). */
static groma_status
rebuild_tensor(reader *r, const value *args)
{
	value	   *const *a = args->u.seq.items;
	value	   *v;
	tensor_info *t;
	int			nstride = 0;
	groma_status st;

	if (args->u.seq.len < 6 || args->u.seq.len > 7)
		return malformed(r, "_rebuild_tensor_v2 with a wrong number of arguments");
	if (a[0]->kind != V_STORAGE)
		return malformed(r, "_rebuild_tensor_v2 without a storage");
	if (a[1]->kind != V_INT || a[1]->u.integer < 0)
		return malformed(r, "_rebuild_tensor_v2 with a bad storage offset");
	st = new_value(r, V_TENSOR, sizeof(tensor_info), &v);
	if (st.code != GROMA_OK)
		return st;
	t = (tensor_info *) (v + 1);
	v->u.tensor = t;
	t->storage = a[0];
	t->offset = a[1]->u.integer;
	st = int_tuple(r, a[2], "_rebuild_tensor_v2 with a bad size", t->shape, &t->ndim);
	if (st.code == GROMA_OK)
		st = int_tuple(r, a[3], "_rebuild_tensor_v2 with a bad stride", t->stride, &nstride);
	if (st.code == GROMA_OK && nstride != t->ndim)
		st = malformed(r, "_rebuild_tensor_v2 with size and stride of different lengths");
	if (st.code != GROMA_OK)
		return st;
	return push(r, v);
}

/* Runs REDUCE: applies an allowed global to an argument tuple, by interpretation. */
static groma_status
op_reduce(reader *r)
{
	value	   *args,
			   *fn;
	groma_status st = pop(r, &args);

	if (st.code == GROMA_OK)
		st = pop(r, &fn);
	if (st.code != GROMA_OK)
		return st;
	if (args->kind != V_TUPLE || fn->kind != V_GLOBAL)
		return malformed(r, "REDUCE without a global and an argument tuple");
	switch (fn->u.global.kind)
	{
		case G_ORDERED_DICT:
			if (args->u.seq.len != 0)
				return groma_error(GROMA_ERR_UNSUPPORTED,
								   "\"%s\": OrderedDict built from arguments at pickle offset %zu",
								   r->label, r->op_pos);
			return push_new(r, V_DICT, 0, NULL);
		case G_REBUILD_TENSOR_V2:
			return rebuild_tensor(r, args);
		case G_REBUILD_PARAMETER:
			/* _rebuild_parameter(data, requires_grad, backward_hooks) is the tensor itself. */
			if (args->u.seq.len != 3 || args->u.seq.items[0]->kind != V_TENSOR)
				return malformed(r, "_rebuild_parameter without a tensor");
			return push(r, args->u.seq.items[0]);
		case G_STORAGE_TYPE:
			break;
	}
	return groma_error(GROMA_ERR_UNSUPPORTED,
					   "\"%s\": pickle calls a storage type at offset %zu", r->label, r->op_pos);
}

/* Runs BUILD: only a dict's attribute state (OrderedDict._metadata) is accepted, and ignored. */
static groma_status
op_build(reader *r)
{
	value	   *state,
			   *target;
	groma_status st = pop(r, &state);

	if (st.code == GROMA_OK)
		st = peek(r, &target);
	if (st.code != GROMA_OK)
		return st;
	if (target->kind != V_DICT || (state->kind != V_DICT && state->kind != V_NONE))
		return groma_error(GROMA_ERR_UNSUPPORTED,
						   "\"%s\": BUILD of a %s from a %s at pickle offset %zu", r->label,
						   kind_name(target->kind), kind_name(state->kind), r->op_pos);
	return groma_ok();
}

/* Runs BINPERSID: ('storage', <storage type>, key, location, numel) becomes a storage value. */
static groma_status
op_binpersid(reader *r)
{
	value	   *pid,
			   *v;
	value	   *const *f;
	groma_status st = pop(r, &pid);

	if (st.code != GROMA_OK)
		return st;
	if (pid->kind != V_TUPLE || pid->u.seq.len != 5)
		return malformed(r, "persistent id that is not a storage record");
	f = pid->u.seq.items;
	if (f[0]->kind != V_STRING || strcmp(f[0]->u.string.text, "storage") != 0)
		return malformed(r, "persistent id that is not a storage record");
	if (f[1]->kind != V_GLOBAL || f[1]->u.global.kind != G_STORAGE_TYPE)
		return malformed(r, "storage record without a storage type");
	if (f[2]->kind != V_STRING || f[2]->u.string.len == 0 || f[3]->kind != V_STRING)
		return malformed(r, "storage record with a bad key or location");
	if (f[4]->kind != V_INT || f[4]->u.integer < 0)
		return malformed(r, "storage record with a bad length");
	st = push_new(r, V_STORAGE, 0, &v);
	if (st.code != GROMA_OK)
		return st;
	v->u.storage.key = f[2]->u.string.text;
	v->u.storage.numel = f[4]->u.integer;
	v->u.storage.dtype = f[1]->u.global.dtype;
	return groma_ok();
}

/* Runs BINPUT/LONG_BINPUT (index from the argument) and MEMOIZE (index = len(memo)). */
static groma_status
memo_put(reader *r, uint64_t index)
{
	value	   *top;
	groma_status st = peek(r, &top);

	if (st.code != GROMA_OK)
		return st;
	if (index >= r->memo_limit)
		return groma_error(GROMA_ERR_LIMIT, "\"%s\": pickle memo index %llu at offset %zu exceeds %zu",
						   r->label, (unsigned long long) index, r->op_pos, r->memo_limit);
	if (index >= r->memo_cap)
	{
		size_t		cap = r->memo_cap ? r->memo_cap : 256;
		value	  **memo;

		while (cap <= index)
			cap *= 2;
		if (cap > r->memo_limit)
			cap = r->memo_limit;
		memo = realloc(r->memo, cap * sizeof(value *));
		if (memo == NULL)
			return groma_error(GROMA_ERR_NO_MEMORY, "\"%s\": out of memory unpickling", r->label);
		memset(memo + r->memo_cap, 0, (cap - r->memo_cap) * sizeof(value *));
		r->memo = memo;
		r->memo_cap = cap;
	}
	if (r->memo[index] == NULL)
		r->memo_len++;
	r->memo[index] = top;
	return groma_ok();
}

/* Runs BINGET/LONG_BINGET. */
static groma_status
memo_get(reader *r, uint64_t index)
{
	if (index >= r->memo_cap || r->memo[index] == NULL)
		return malformed(r, "BINGET of a memo entry that was never set");
	return push(r, r->memo[index]);
}

/* Runs PROTO: protocols 2 to 5 are read (torch.save writes 2). */
static groma_status
op_proto(reader *r)
{
	uint64_t	version;
	groma_status st = take_uint(r, 1, &version);

	if (st.code == GROMA_OK && (version < 2 || version > 5))
		return groma_error(GROMA_ERR_UNSUPPORTED, "\"%s\": pickle protocol %u is not supported",
						   r->label, (unsigned) version);
	return st;
}

/* Runs an opcode taking a 1/2/4-byte unsigned argument (ints, memo indices). */
static groma_status
op_with_uint(reader *r, int op, size_t width)
{
	uint64_t	arg;
	groma_status st = take_uint(r, width, &arg);

	if (st.code != GROMA_OK)
		return st;
	switch (op)
	{
		case OP_BININT:
			return push_int(r, V_INT, (int64_t) (int32_t) (uint32_t) arg);
		case OP_BININT1:
		case OP_BININT2:
			return push_int(r, V_INT, (int64_t) arg);
		case OP_BINPUT:
		case OP_LONG_BINPUT:
			return memo_put(r, arg);
		case OP_BINGET:
		case OP_LONG_BINGET:
			return memo_get(r, arg);
		case OP_FRAME:
			/* Frames only group opcodes; check the length and read on. */
			return arg <= r->size - r->pos ? groma_ok() : malformed(r, "frame past the end");
	}
	return malformed(r, "internal: unknown argument opcode");
}

/* Runs one opcode at r->pos. */
static groma_status
run_opcode(reader *r)
{
	int			op = r->data[r->pos++];
	value	   *v;

	switch (op)
	{
		case OP_PROTO:
			return op_proto(r);
		case OP_FRAME:
			return op_with_uint(r, op, 8);
		case OP_EMPTY_DICT:
			return push_new(r, V_DICT, 0, NULL);
		case OP_EMPTY_LIST:
			return push_new(r, V_LIST, 0, NULL);
		case OP_EMPTY_TUPLE:
			return op_tuple(r, 0);
		case OP_MARK:
			if (r->mark_count >= MAX_MARK_DEPTH)
				return groma_error(GROMA_ERR_LIMIT, "\"%s\": pickle marks nested deeper than %u",
								   r->label, MAX_MARK_DEPTH);
			r->marks[r->mark_count++] = r->depth;
			return groma_ok();
		case OP_TUPLE:
			return op_tuple(r, -1);
		case OP_TUPLE1:
		case OP_TUPLE2:
		case OP_TUPLE3:
			return op_tuple(r, op - OP_TUPLE1 + 1);
		case OP_SHORT_BINUNICODE:
			return op_unicode(r, 1);
		case OP_BINUNICODE:
			return op_unicode(r, 4);
		case OP_BINUNICODE8:
			return op_unicode(r, 8);
		case OP_BININT:
			return op_with_uint(r, op, 4);
		case OP_BININT1:
			return op_with_uint(r, op, 1);
		case OP_BININT2:
			return op_with_uint(r, op, 2);
		case OP_LONG1:
			return op_long(r, 1);
		case OP_LONG4:
			return op_long(r, 4);
		case OP_BINFLOAT:
			return op_binfloat(r);
		case OP_NEWTRUE:
		case OP_NEWFALSE:
			return push_int(r, V_BOOL, op == OP_NEWTRUE);
		case OP_NONE:
			return push_new(r, V_NONE, 0, NULL);
		case OP_BINPUT:
		case OP_BINGET:
			return op_with_uint(r, op, 1);
		case OP_LONG_BINPUT:
		case OP_LONG_BINGET:
			return op_with_uint(r, op, 4);
		case OP_MEMOIZE:
			return memo_put(r, r->memo_len);
		case OP_SETITEM:
			return op_add_one(r, V_DICT, 2);
		case OP_SETITEMS:
			return op_add_marked(r, V_DICT);
		case OP_APPEND:
			return op_add_one(r, V_LIST, 1);
		case OP_APPENDS:
			return op_add_marked(r, V_LIST);
		case OP_GLOBAL:
			return op_global(r);
		case OP_STACK_GLOBAL:
			return op_stack_global(r);
		case OP_REDUCE:
			return op_reduce(r);
		case OP_BUILD:
			return op_build(r);
		case OP_BINPERSID:
			return op_binpersid(r);
		case OP_STOP:
			{
				groma_status st = pop(r, &v);

				if (st.code == GROMA_OK)
					r->result = v;
				return st;
			}
	}
	return groma_error(GROMA_ERR_UNSUPPORTED,
					   "\"%s\": pickle opcode 0x%02x at offset %zu is not used by state dicts",
					   r->label, op, r->op_pos);
}

/* Orders tensor records by name. */
static int
compare_tensor_names(const void *a, const void *b)
{
	return strcmp(((const groma_pickle_tensor *) a)->name, ((const groma_pickle_tensor *) b)->name);
}

/* Returns GROMA_ERR_FORMAT when two records share a name (a dict cannot hold that). */
static groma_status
check_unique_names(const char *label, const groma_pickle_state_dict *sd)
{
	groma_pickle_tensor *sorted;
	groma_status st = groma_ok();

	if (sd->count < 2)
		return st;
	sorted = malloc(sd->count * sizeof(*sorted));
	if (sorted == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "\"%s\": out of memory", label);
	memcpy(sorted, sd->tensors, sd->count * sizeof(*sorted));
	qsort(sorted, sd->count, sizeof(*sorted), compare_tensor_names);
	for (size_t i = 1; i < sd->count && st.code == GROMA_OK; i++)
		if (strcmp(sorted[i - 1].name, sorted[i].name) == 0)
			st = groma_error(GROMA_ERR_FORMAT, "\"%s\": tensor \"%s\" appears twice", label,
							 sorted[i].name);
	free(sorted);
	return st;
}

/* Copies the state dict in r->result into out (names and keys duplicated). */
static groma_status
extract_state_dict(const reader *r, groma_pickle_state_dict *out)
{
	const value *dict = r->result;
	size_t		pairs;

	if (dict->kind != V_DICT)
		return groma_error(GROMA_ERR_FORMAT, "\"%s\" holds a %s, not a state dict", r->label,
						   kind_name(dict->kind));
	pairs = dict->u.seq.len / 2;
	out->tensors = calloc(pairs ? pairs : 1, sizeof(*out->tensors));
	if (out->tensors == NULL)
		return groma_error(GROMA_ERR_NO_MEMORY, "\"%s\": out of memory", r->label);
	for (size_t i = 0; i < pairs; i++)
	{
		const value *key = dict->u.seq.items[2 * i];
		const value *val = dict->u.seq.items[2 * i + 1];
		groma_pickle_tensor *t = &out->tensors[out->count];
		const tensor_info *info;
		char		kbuf[64];

		if (key->kind != V_STRING)
			return groma_error(GROMA_ERR_FORMAT, "\"%s\": state dict key %zu is a %s, not a str",
							   r->label, i, kind_name(key->kind));
		if (val->kind != V_TENSOR)
			return groma_error(GROMA_ERR_FORMAT,
							   "\"%s\": state dict entry \"%s\" is a %s, not a tensor", r->label,
							   printable(key->u.string.text, kbuf, sizeof(kbuf)),
							   kind_name(val->kind));
		info = val->u.tensor;
		t->name = strdup(key->u.string.text);
		t->storage_key = strdup(info->storage->u.storage.key);
		out->count++;
		if (t->name == NULL || t->storage_key == NULL)
			return groma_error(GROMA_ERR_NO_MEMORY, "\"%s\": out of memory", r->label);
		t->dtype = info->storage->u.storage.dtype;
		t->ndim = info->ndim;
		memcpy(t->shape, info->shape, sizeof(t->shape));
		memcpy(t->stride, info->stride, sizeof(t->stride));
		t->storage_offset = info->offset;
		t->storage_numel = info->storage->u.storage.numel;
	}
	return check_unique_names(r->label, out);
}

/* Interprets a state-dict pickle; see pickle_reader.h. */
groma_status
groma_pickle_read_state_dict(const uint8_t *data, size_t size, const char *label,
							 groma_pickle_state_dict *out)
{
	reader		r;
	groma_status st = groma_ok();

	memset(out, 0, sizeof(*out));
	memset(&r, 0, sizeof(r));
	r.data = data;
	r.size = data ? size : 0;
	r.label = label ? label : "data.pkl";
	r.memo_limit = r.size < MAX_MEMO_ENTRIES ? r.size : MAX_MEMO_ENTRIES;
	if (r.size > GROMA_PICKLE_MAX_BYTES)
		return groma_error(GROMA_ERR_LIMIT, "\"%s\": pickle of %zu bytes exceeds %u MiB", r.label,
						   r.size, GROMA_PICKLE_MAX_BYTES >> 20);
	while (st.code == GROMA_OK && r.result == NULL)
	{
		if (r.pos >= r.size)
		{
			st = groma_error(GROMA_ERR_FORMAT, "\"%s\": pickle ends without STOP", r.label);
			break;
		}
		r.op_pos = r.pos;
		st = run_opcode(&r);
	}
	if (st.code == GROMA_OK)
		st = extract_state_dict(&r, out);
	free_reader(&r);
	if (st.code != GROMA_OK)
		groma_pickle_state_dict_free(out);
	return st;
}

/* Frees the records and their strings; leaves *sd empty. */
void
groma_pickle_state_dict_free(groma_pickle_state_dict *sd)
{
	if (sd == NULL)
		return;
	for (size_t i = 0; i < sd->count; i++)
	{
		free(sd->tensors[i].name);
		free(sd->tensors[i].storage_key);
	}
	free(sd->tensors);
	sd->tensors = NULL;
	sd->count = 0;
}
