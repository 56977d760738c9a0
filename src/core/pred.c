/*
 * pred.c - the predicate language (docs/PREDICATES.md is normative): a
 * recursive-descent parser that compiles text into a flat tree, an
 * evaluator that reads MessagePack documents in place, the total order
 * that `order by` sorts with, and the canonical text form.
 *
 * Invariants:
 *  - A compiled predicate is never written after compile returns. Nodes,
 *    child lists, path segments and literal bytes live in arrays it owns
 *    and refer to each other by index, so threads can share it.
 *  - Literals are stored as MessagePack written by mp.h's writer. Every
 *    value the evaluator compares has passed weft__mp_skip (well-formed,
 *    nesting within WEFT_MP_MAX_DEPTH, strings valid UTF-8), so comparing
 *    values cannot fail and recursion in it is bounded.
 *  - `and`/`or` nodes are n-ary and never have a child of their own kind:
 *    parenthesised chains are flattened into their parent while parsing.
 *    The canonical text therefore needs the fewest parentheses, and
 *    formatting, then parsing, then formatting again gives the same bytes.
 *  - The canonical form never exceeds WEFT_PRED_MAX_TEXT: compile formats
 *    what it parsed and refuses it otherwise, so compile(format(p)) always
 *    succeeds (formatting never adds nesting, nodes or parameters).
 *  - The parser's and the evaluator's recursion is bounded by
 *    WEFT_PRED_MAX_DEPTH; evaluation allocates nothing.
 *
 * The file is a little past STYLE.md's ~2,000 lines. Its parts (lexer and
 * parser, the total order, evaluation, canonical text) all work on the
 * compiled form defined at the top, which nothing else should see; if it
 * grows further, the total order is the part to move out first.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/weft.h"
#include "core/json.h"
#include "core/pred.h"

/* ---- compiled form ---- */

enum nkind { N_TRUE = 1, N_FALSE, N_AND, N_OR, N_NOT, N_CMP, N_IN, N_CONTAINS, N_EXISTS };
enum cmpop { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };

static const char *const op_text[] = {"==", "!=", "<", "<=", ">", ">="};

struct pnode {
	uint8_t kind;     /* enum nkind */
	uint8_t op;       /* N_CMP: enum cmpop */
	uint8_t param;    /* the right-hand side is parameter number `val` */
	uint32_t a;       /* AND/OR: first child in kids; NOT: child; else first segment */
	uint32_t n;       /* AND/OR: number of children; else number of segments */
	uint32_t val;     /* literal: offset in the pool; parameter: its index */
	uint32_t val_len; /* literal: bytes of its MessagePack */
};

struct span {
	uint32_t off; /* first byte in the pool */
	uint32_t len; /* bytes */
};

struct weft_pred {
	const struct weft_alloc *alloc;           /* frees everything below */
	struct pnode *nodes;                      /* the tree */
	uint32_t *kids;                           /* children of AND/OR nodes, by node index */
	struct span *segs;                        /* path segments (keys) */
	uint8_t *pool;                            /* keys, literals, parameter names; never NULL */
	uint32_t root;                            /* index of the root node */
	uint32_t nparams;                         /* distinct parameters */
	struct span params[WEFT_PRED_MAX_PARAMS]; /* names, NUL-terminated in pool */
	bool param_array[WEFT_PRED_MAX_PARAMS];   /* used with `in`: must be an array */
};

struct okey {
	uint32_t seg;  /* first segment of the path */
	uint32_t nseg; /* segments */
	bool desc;     /* descending */
};

struct weft_query {
	const struct weft_alloc *alloc;         /* frees q and its predicate */
	struct weft_pred *pred;                 /* the predicate; owns the key paths */
	struct okey keys[WEFT_QUERY_MAX_ORDER]; /* `order by` keys, in order */
	uint32_t nkeys;                         /* keys in use */
	bool has_limit;                         /* a `limit` was given */
	uint64_t limit;                         /* its value, 0 .. INT64_MAX */
};

/* A MessagePack value somewhere in memory. */
struct slice {
	const uint8_t *p; /* first byte */
	size_t len;       /* bytes */
};

static const char *const reserved[] = {"and",    "or",   "not",   "in",   "contains",
                                       "exists", "true", "false", "null", "order",
                                       "by",     "asc",  "desc",  "limit"};

static bool is_reserved(const char *s, size_t len)
{
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strlen(reserved[i]) == len && memcmp(reserved[i], s, len) == 0)
			return true;
	return false;
}

static bool is_id_start(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool is_id_char(int c)
{
	return is_id_start(c) || is_digit(c);
}

static bool is_ident(const char *s, size_t len)
{
	if (len == 0 || !is_id_start((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!is_id_char((unsigned char)s[i]))
			return false;
	return true;
}

/* ---- lexer ---- */

enum tk {
	T_EOF,
	T_IDENT, /* [A-Za-z_][A-Za-z0-9_]*: keywords too */
	T_STR,   /* decoded bytes in parser.sb */
	T_INT,
	T_FLOAT,
	T_PARAM, /* $name */
	T_LPAREN,
	T_RPAREN,
	T_LBRACK,
	T_RBRACK,
	T_COMMA,
	T_DOT,
	T_EQ,
	T_NE,
	T_LT,
	T_LE,
	T_GT,
	T_GE
};

struct tok {
	enum tk t;
	size_t off;      /* first byte of the token */
	size_t name;     /* T_IDENT, T_PARAM: first byte of the name */
	size_t name_len; /* its bytes */
	int64_t i;       /* T_INT */
	double d;        /* T_FLOAT */
};

struct parser {
	const struct weft_alloc *a; /* every allocation */
	const char *s;              /* the text */
	size_t len;                 /* its bytes */
	size_t pos;                 /* where the next token starts (before blanks) */
	struct tok tok;             /* the current token */
	struct mp_buf sb;           /* the current T_STR's bytes */
	struct mp_buf nb;           /* scratch for converting floats */
	struct mp_buf pool;         /* becomes weft_pred.pool */
	struct pnode *nodes;        /* becomes weft_pred.nodes */
	uint32_t nnodes, ncap;
	uint32_t *kids; /* becomes weft_pred.kids */
	uint32_t nkids, kcap;
	uint32_t *stack; /* operands of the and/or chains being parsed */
	uint32_t sp, scap;
	struct span *segs; /* becomes weft_pred.segs */
	uint32_t nsegs, segcap;
	struct span params[WEFT_PRED_MAX_PARAMS]; /* distinct parameter names */
	bool param_array[WEFT_PRED_MAX_PARAMS];   /* ... used after `in` */
	uint32_t nparams;
	uint32_t depth; /* open '(' / 'not' / '[' */
	uint32_t count; /* nodes, as PREDICATES.md counts them */
	int rc;         /* first error */
	char *err;      /* the caller's message buffer (may be NULL) */
	size_t errlen;  /* its size */
};

static void set_msg(struct parser *p, int rc, const char *msg)
{
	if (p->rc)
		return;
	p->rc = rc;
	if (p->err && p->errlen)
		snprintf(p->err, p->errlen, "%s", msg);
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int
fail(struct parser *p, int rc, size_t off, const char *fmt, ...)
{
	size_t line = 1, col = 1;
	va_list ap;
	int n;

	if (p->rc)
		return p->rc;
	p->rc = rc;
	if (!p->err || !p->errlen)
		return rc;
	for (size_t i = 0; i < off && i < p->len; i++) {
		unsigned char c = (unsigned char)p->s[i];

		if (c == '\n') {
			line++;
			col = 1;
		} else if ((c & 0xC0) != 0x80) {
			col++;
		}
	}
	n = snprintf(p->err, p->errlen, "at %zu:%zu (byte %zu): ", line, col, off);
	if (n >= 0 && (size_t)n < p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static int oom(struct parser *p)
{
	set_msg(p, WEFT_ENOMEM, "out of memory");
	return p->rc;
}

static int grow(struct parser *p, void **arr, uint32_t *cap, uint32_t need, size_t size)
{
	uint32_t nc = *cap ? *cap : 16;
	void *n;

	if (need <= *cap)
		return WEFT_OK;
	while (nc < need)
		nc *= 2;
	n = weft__realloc(p->a, *arr, (size_t)nc * size);
	if (!n)
		return oom(p);
	*arr = n;
	*cap = nc;
	return WEFT_OK;
}

/* Length of the valid UTF-8 sequence at s (n bytes left, s[0] >= 0x80), or
 * 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t k;

	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		k = 2;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		k = 3;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		k = 4;
	else
		return 0;
	return k <= n && weft__utf8_valid((const char *)s, k) ? k : 0;
}

static int hex4(const unsigned char *s, uint32_t *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		int c = s[i], d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		*v = *v << 4 | (uint32_t)d;
	}
	return 0;
}

static void put_utf8(struct mp_buf *b, uint32_t cp)
{
	uint8_t u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (uint8_t)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (uint8_t)(0xC0 | cp >> 6);
		u[1] = (uint8_t)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (uint8_t)(0xE0 | cp >> 12);
		u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
		u[2] = (uint8_t)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (uint8_t)(0xF0 | cp >> 18);
		u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
		u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
		u[3] = (uint8_t)(0x80 | (cp & 0x3F));
		n = 4;
	}
	weft__mp_write_raw(b, u, n);
}

/* A JSON string literal starting at the quote at `start`, decoded into sb. */
static int lex_string(struct parser *p, size_t start)
{
	const unsigned char *s = (const unsigned char *)p->s;
	size_t i = start + 1;

	weft__mp_buf_reset(&p->sb);
	for (;;) {
		size_t run = i, k;
		uint32_t cp, lo;

		/* a run of bytes that stand for themselves */
		while (i < p->len && s[i] >= 0x20 && s[i] != '"' && s[i] != '\\') {
			if (s[i] < 0x80) {
				i++;
				continue;
			}
			if (!(k = utf8_seq(s + i, p->len - i)))
				return fail(p, WEFT_EINVAL, i, "invalid UTF-8 in string");
			i += k;
		}
		if (i > run)
			weft__mp_write_raw(&p->sb, s + run, i - run);
		if (i >= p->len)
			return fail(p, WEFT_EINVAL, start, "unterminated string");
		if (s[i] == '"') {
			i++;
			break;
		}
		if (s[i] < 0x20)
			return fail(p, WEFT_EINVAL, i,
			            "control character in string (write it as an escape)");
		/* a backslash */
		if (i + 1 >= p->len)
			return fail(p, WEFT_EINVAL, start, "unterminated string");
		switch (s[i + 1]) {
		case '"':
		case '\\':
		case '/':
			cp = s[i + 1];
			break;
		case 'b':
			cp = '\b';
			break;
		case 'f':
			cp = '\f';
			break;
		case 'n':
			cp = '\n';
			break;
		case 'r':
			cp = '\r';
			break;
		case 't':
			cp = '\t';
			break;
		case 'u':
			if (p->len - i < 6 || hex4(s + i + 2, &cp) != 0)
				return fail(p, WEFT_EINVAL, i,
				            "invalid \\u escape (expected 4 hex digits)");
			if (cp >= 0xDC00 && cp <= 0xDFFF)
				return fail(p, WEFT_EINVAL, i, "unpaired surrogate in \\u escape");
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (p->len - i < 12 || s[i + 6] != '\\' || s[i + 7] != 'u' ||
				    hex4(s + i + 8, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
					return fail(p, WEFT_EINVAL, i,
					            "unpaired surrogate in \\u escape");
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				i += 6;
			}
			i += 4;
			break;
		default:
			if (s[i + 1] > 0x20 && s[i + 1] < 0x7F)
				return fail(p, WEFT_EINVAL, i, "invalid escape '\\%c' in string",
				            s[i + 1]);
			return fail(p, WEFT_EINVAL, i, "invalid escape in string");
		}
		put_utf8(&p->sb, cp);
		i += 2;
	}
	if (p->sb.err)
		return oom(p);
	p->tok.t = T_STR;
	p->pos = i;
	return WEFT_OK;
}

/* A JSON number starting at `start` (a '-' or a digit). */
static int lex_number(struct parser *p, size_t start)
{
	const unsigned char *s = (const unsigned char *)p->s;
	size_t i = start, int0, int1, frac0 = 0, frac1 = 0;
	bool neg = false, is_float = false, eneg = false;
	long long e = 0;

	if (s[i] == '-') {
		neg = true;
		i++;
	}
	int0 = i;
	if (i < p->len && s[i] == '0')
		i++;
	else if (i < p->len && s[i] >= '1' && s[i] <= '9')
		while (i < p->len && is_digit(s[i]))
			i++;
	else
		return fail(p, WEFT_EINVAL, start, "invalid number");
	int1 = i;
	if (i < p->len && s[i] == '.') {
		frac0 = ++i;
		if (i >= p->len || !is_digit(s[i]))
			return fail(p, WEFT_EINVAL, start, "invalid number");
		while (i < p->len && is_digit(s[i]))
			i++;
		frac1 = i;
		is_float = true;
	}
	if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < p->len && (s[i] == '+' || s[i] == '-'))
			eneg = s[i++] == '-';
		if (i >= p->len || !is_digit(s[i]))
			return fail(p, WEFT_EINVAL, start, "invalid number");
		/* saturate: past 10^8 the result is 0 or infinite anyway */
		for (; i < p->len && is_digit(s[i]); i++)
			if (e < 100000000)
				e = e * 10 + (s[i] - '0');
		is_float = true;
	}
	if (i < p->len && (is_id_char(s[i]) || s[i] == '.'))
		return fail(p, WEFT_EINVAL, start, "invalid number");
	p->pos = i;
	if (!is_float) {
		uint64_t u = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;

		for (size_t k = int0; k < int1; k++) {
			unsigned d = (unsigned)(s[k] - '0');

			if (u > (lim - d) / 10)
				return fail(p, WEFT_EINVAL, start, "integer out of range (int64)");
			u = u * 10 + d;
		}
		p->tok.t = T_INT;
		p->tok.i = !neg                           ? (int64_t)u
		           : u == (uint64_t)INT64_MAX + 1 ? INT64_MIN
		                                          : -(int64_t)u;
		return WEFT_OK;
	}
	/* strtod on "[-]DIGITSe[-]EXP": no radix character, so the locale
	 * (LC_NUMERIC) cannot change how it reads. */
	{
		char ebuf[32];
		long long e10 = (eneg ? -e : e) - (long long)(frac1 - frac0);
		double d;

		weft__mp_buf_reset(&p->nb);
		if (neg)
			weft__mp_write_raw(&p->nb, "-", 1);
		weft__mp_write_raw(&p->nb, s + int0, int1 - int0);
		if (frac1 > frac0)
			weft__mp_write_raw(&p->nb, s + frac0, frac1 - frac0);
		snprintf(ebuf, sizeof(ebuf), "e%lld", e10);
		weft__mp_write_raw(&p->nb, ebuf, strlen(ebuf) + 1);
		if (p->nb.err)
			return oom(p);
		d = strtod((const char *)p->nb.data, NULL);
		if (isinf(d) || isnan(d))
			return fail(p, WEFT_EINVAL, start, "number out of range (float64)");
		p->tok.t = T_FLOAT;
		p->tok.d = d == 0 ? 0.0 : d; /* -0.0 is 0.0 */
	}
	return WEFT_OK;
}

/* Reads the next token into p->tok. */
static int next(struct parser *p)
{
	const unsigned char *s = (const unsigned char *)p->s;
	size_t i = p->pos;
	int c;

	while (i < p->len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	memset(&p->tok, 0, sizeof(p->tok));
	p->tok.off = i;
	if (i == p->len) {
		p->tok.t = T_EOF;
		p->pos = i;
		return WEFT_OK;
	}
	c = s[i];
	switch (c) {
	case '(':
		p->tok.t = T_LPAREN;
		break;
	case ')':
		p->tok.t = T_RPAREN;
		break;
	case '[':
		p->tok.t = T_LBRACK;
		break;
	case ']':
		p->tok.t = T_RBRACK;
		break;
	case ',':
		p->tok.t = T_COMMA;
		break;
	case '.':
		p->tok.t = T_DOT;
		break;
	case '=':
		if (i + 1 >= p->len || s[i + 1] != '=')
			return fail(p, WEFT_EINVAL, i, "expected '==' (there is no '=' operator)");
		p->tok.t = T_EQ;
		i++;
		break;
	case '!':
		if (i + 1 >= p->len || s[i + 1] != '=')
			return fail(p, WEFT_EINVAL, i, "expected '!=' (negation is 'not')");
		p->tok.t = T_NE;
		i++;
		break;
	case '<':
	case '>':
		p->tok.t = c == '<' ? T_LT : T_GT;
		if (i + 1 < p->len && s[i + 1] == '=') {
			p->tok.t = c == '<' ? T_LE : T_GE;
			i++;
		}
		break;
	case '"':
		return lex_string(p, i);
	case '$':
		if (i + 1 >= p->len || !is_id_start(s[i + 1]))
			return fail(p, WEFT_EINVAL, i, "expected a parameter name after '$'");
		p->tok.t = T_PARAM;
		p->tok.name = ++i;
		while (i < p->len && is_id_char(s[i]))
			i++;
		p->tok.name_len = i - p->tok.name;
		if (p->tok.name_len > WEFT_PRED_MAX_PARAM_NAME)
			return fail(p, WEFT_ETOOBIG, p->tok.off,
			            "parameter name longer than %d bytes",
			            WEFT_PRED_MAX_PARAM_NAME);
		p->pos = i;
		return WEFT_OK;
	default:
		if (c == '-' || is_digit(c))
			return lex_number(p, i);
		if (!is_id_start(c)) {
			if (c > 0x20 && c < 0x7F)
				return fail(p, WEFT_EINVAL, i, "unexpected character '%c'", c);
			return fail(p, WEFT_EINVAL, i, "unexpected byte 0x%02X outside a string",
			            (unsigned)c);
		}
		p->tok.t = T_IDENT;
		p->tok.name = i;
		while (i < p->len && is_id_char(s[i]))
			i++;
		p->tok.name_len = i - p->tok.name;
		p->pos = i;
		return WEFT_OK;
	}
	p->pos = i + 1;
	return WEFT_OK;
}

static bool is_kw(const struct parser *p, const char *kw)
{
	return p->tok.t == T_IDENT && p->tok.name_len == strlen(kw) &&
	       memcmp(p->s + p->tok.name, kw, p->tok.name_len) == 0;
}

/* ---- parser ---- */

static int count_node(struct parser *p, size_t off)
{
	if (++p->count > WEFT_PRED_MAX_NODES)
		return fail(p, WEFT_ETOOBIG, off,
		            "more than %d nodes (comparisons, operators, constants, list elements)",
		            WEFT_PRED_MAX_NODES);
	return WEFT_OK;
}

static int enter(struct parser *p, size_t off)
{
	if (++p->depth > WEFT_PRED_MAX_DEPTH)
		return fail(p, WEFT_ETOOBIG, off, "nesting deeper than %d levels",
		            WEFT_PRED_MAX_DEPTH);
	return WEFT_OK;
}

static int add_node(struct parser *p, const struct pnode *n, uint32_t *idx)
{
	if (grow(p, (void **)&p->nodes, &p->ncap, p->nnodes + 1, sizeof(*p->nodes)) != WEFT_OK)
		return p->rc;
	p->nodes[p->nnodes] = *n;
	*idx = p->nnodes++;
	return WEFT_OK;
}

static int push(struct parser *p, uint32_t v)
{
	if (grow(p, (void **)&p->stack, &p->scap, p->sp + 1, sizeof(*p->stack)) != WEFT_OK)
		return p->rc;
	p->stack[p->sp++] = v;
	return WEFT_OK;
}

/* Pushes node i as a child of a `kind` chain, splicing in its children if
 * it is a (parenthesised) chain of the same kind. */
static int push_flat(struct parser *p, uint8_t kind, uint32_t i)
{
	uint32_t first = p->nodes[i].a, n = p->nodes[i].n;
	int rc = WEFT_OK;

	if (p->nodes[i].kind != kind)
		return push(p, i);
	for (uint32_t k = 0; k < n && rc == WEFT_OK; k++)
		rc = push(p, p->kids[first + k]);
	return rc;
}

/* Appends bytes to the pool; the pool offset they start at goes to *off. */
static int pool_put(struct parser *p, const void *b, size_t len, uint32_t *off)
{
	*off = (uint32_t)p->pool.len;
	if (len)
		weft__mp_write_raw(&p->pool, b, len);
	return p->pool.err ? oom(p) : WEFT_OK;
}

/* path = key ('.' key)*, key = identifier | string. The first key, when
 * unquoted, must not be a reserved word. */
static int parse_path(struct parser *p, uint32_t *first, uint32_t *n)
{
	int rc;

	*first = p->nsegs;
	*n = 0;
	for (;;) {
		size_t off = p->tok.off;
		const void *key;
		size_t klen;
		struct span sg;

		if (p->tok.t == T_IDENT) {
			key = p->s + p->tok.name;
			klen = p->tok.name_len;
			if (*n == 0 && is_reserved(key, klen))
				return fail(
				    p, WEFT_EINVAL, off,
				    "'%.*s' is a reserved word (quote it, \"%.*s\", to use it "
				    "as a key)",
				    (int)klen, (const char *)key, (int)klen, (const char *)key);
		} else if (p->tok.t == T_STR) {
			key = p->sb.data;
			klen = p->sb.len;
		} else {
			return fail(p, WEFT_EINVAL, off,
			            *n ? "expected a key after '.'" : "expected a field path");
		}
		if (klen > WEFT_PRED_MAX_KEY)
			return fail(p, WEFT_ETOOBIG, off, "key longer than %d bytes",
			            WEFT_PRED_MAX_KEY);
		if (*n == WEFT_PRED_MAX_PATH)
			return fail(p, WEFT_ETOOBIG, off, "field path longer than %d keys",
			            WEFT_PRED_MAX_PATH);
		if ((rc = pool_put(p, key, klen, &sg.off)) != WEFT_OK)
			return rc;
		sg.len = (uint32_t)klen;
		if ((rc = grow(p, (void **)&p->segs, &p->segcap, p->nsegs + 1, sizeof(*p->segs))))
			return rc;
		p->segs[p->nsegs++] = sg;
		(*n)++;
		if ((rc = next(p)) != WEFT_OK)
			return rc;
		if (p->tok.t != T_DOT)
			return WEFT_OK;
		if ((rc = next(p)) != WEFT_OK)
			return rc;
	}
}

/* The index of parameter $name (the current T_PARAM), adding it if new. */
static int param_ref(struct parser *p, bool array, uint32_t *idx)
{
	const char *name = p->s + p->tok.name;
	size_t len = p->tok.name_len;
	uint32_t i, off, nul;
	int rc;

	for (i = 0; i < p->nparams; i++)
		if (p->params[i].len == len &&
		    memcmp(p->pool.data + p->params[i].off, name, len) == 0)
			break;
	if (i == p->nparams) {
		if (i == WEFT_PRED_MAX_PARAMS)
			return fail(p, WEFT_ETOOBIG, p->tok.off, "more than %d distinct parameters",
			            WEFT_PRED_MAX_PARAMS);
		/* the name, NUL-terminated for weft__pred_param_name */
		if ((rc = pool_put(p, name, len, &off)) != WEFT_OK ||
		    (rc = pool_put(p, "", 1, &nul)) != WEFT_OK)
			return rc;
		p->params[i].off = off;
		p->params[i].len = (uint32_t)len;
		p->param_array[i] = false;
		p->nparams++;
	}
	p->param_array[i] |= array;
	*idx = i;
	return WEFT_OK;
}

static int parse_literal(struct parser *p);

/* '[' [literal (',' literal)*] ']' as a MessagePack array in the pool. */
static int parse_list(struct parser *p)
{
	size_t start = p->pool.len;
	uint32_t n = 0;
	uint8_t h[3];
	size_t hl;
	int rc;

	if ((rc = enter(p, p->tok.off)) != WEFT_OK || (rc = next(p)) != WEFT_OK)
		return rc;
	if (p->tok.t != T_RBRACK) {
		for (;;) {
			if (n == WEFT_PRED_MAX_LIST)
				return fail(p, WEFT_ETOOBIG, p->tok.off,
				            "list longer than %d elements", WEFT_PRED_MAX_LIST);
			if (p->tok.t == T_PARAM)
				return fail(p, WEFT_EINVAL, p->tok.off,
				            "parameters are not allowed inside a list");
			if ((rc = count_node(p, p->tok.off)) != WEFT_OK ||
			    (rc = parse_literal(p)) != WEFT_OK)
				return rc;
			n++;
			if (p->tok.t == T_RBRACK)
				break;
			if (p->tok.t != T_COMMA)
				return fail(p, WEFT_EINVAL, p->tok.off,
				            "expected ',' or ']' in list");
			if ((rc = next(p)) != WEFT_OK)
				return rc;
		}
	}
	p->depth--;
	/* the header goes before the elements: minimal, as mp_write_array */
	if (n < 16) {
		h[0] = (uint8_t)(0x90 | n);
		hl = 1;
	} else {
		h[0] = 0xdc;
		h[1] = (uint8_t)(n >> 8);
		h[2] = (uint8_t)n;
		hl = 3;
	}
	weft__mp_write_raw(&p->pool, h, hl);
	if (p->pool.err)
		return oom(p);
	memmove(p->pool.data + start + hl, p->pool.data + start, p->pool.len - hl - start);
	memcpy(p->pool.data + start, h, hl);
	return next(p);
}

/* A literal value, appended to the pool as MessagePack. */
static int parse_literal(struct parser *p)
{
	switch (p->tok.t) {
	case T_INT:
		weft__mp_write_int(&p->pool, p->tok.i);
		break;
	case T_FLOAT:
		weft__mp_write_double(&p->pool, p->tok.d);
		break;
	case T_STR:
		weft__mp_write_str(&p->pool, (const char *)p->sb.data, p->sb.len);
		break;
	case T_LBRACK:
		return parse_list(p);
	default:
		if (is_kw(p, "null"))
			weft__mp_write_nil(&p->pool);
		else if (is_kw(p, "true") || is_kw(p, "false"))
			weft__mp_write_bool(&p->pool, is_kw(p, "true"));
		else
			return fail(p, WEFT_EINVAL, p->tok.off, "expected a literal value");
	}
	if (p->pool.err)
		return oom(p);
	return next(p);
}

static bool starts_literal(const struct parser *p)
{
	return p->tok.t == T_INT || p->tok.t == T_FLOAT || p->tok.t == T_STR ||
	       p->tok.t == T_LBRACK || is_kw(p, "null") || is_kw(p, "true") || is_kw(p, "false");
}

/* The right-hand side of a comparison: a literal or a $parameter. */
static int parse_rhs(struct parser *p, struct pnode *n, const char *after)
{
	uint32_t start = (uint32_t)p->pool.len;
	int rc;

	if (p->tok.t == T_PARAM) {
		n->param = 1;
		if ((rc = param_ref(p, false, &n->val)) != WEFT_OK)
			return rc;
		return next(p);
	}
	if (!starts_literal(p))
		return fail(p, WEFT_EINVAL, p->tok.off,
		            "expected a literal or a $parameter after '%s'", after);
	if ((rc = parse_literal(p)) != WEFT_OK)
		return rc;
	n->val = start;
	n->val_len = (uint32_t)p->pool.len - start;
	return WEFT_OK;
}

static int parse_or(struct parser *p, uint32_t *out);

/* primary = '(' or ')' | 'true' | 'false' | 'exists' '(' path ')'
 *         | path op rhs | path 'in' (list | param) | path 'contains' rhs */
static int parse_primary(struct parser *p, uint32_t *out)
{
	struct pnode n;
	size_t off = p->tok.off;
	int rc;

	memset(&n, 0, sizeof(n));
	if (p->tok.t == T_LPAREN) {
		if ((rc = enter(p, off)) != WEFT_OK || (rc = next(p)) != WEFT_OK ||
		    (rc = parse_or(p, out)) != WEFT_OK)
			return rc;
		if (p->tok.t != T_RPAREN)
			return fail(p, WEFT_EINVAL, p->tok.off, "expected ')' after expression");
		p->depth--;
		return next(p);
	}
	if (is_kw(p, "true") || is_kw(p, "false")) {
		n.kind = is_kw(p, "true") ? N_TRUE : N_FALSE;
		if ((rc = count_node(p, off)) != WEFT_OK || (rc = next(p)) != WEFT_OK)
			return rc;
		return add_node(p, &n, out);
	}
	if (is_kw(p, "exists")) {
		n.kind = N_EXISTS;
		if ((rc = count_node(p, off)) != WEFT_OK || (rc = next(p)) != WEFT_OK)
			return rc;
		if (p->tok.t != T_LPAREN)
			return fail(p, WEFT_EINVAL, p->tok.off, "expected '(' after 'exists'");
		if ((rc = next(p)) != WEFT_OK || (rc = parse_path(p, &n.a, &n.n)) != WEFT_OK)
			return rc;
		if (p->tok.t != T_RPAREN)
			return fail(p, WEFT_EINVAL, p->tok.off, "expected ')' after field path");
		if ((rc = next(p)) != WEFT_OK)
			return rc;
		return add_node(p, &n, out);
	}
	if (p->tok.t == T_IDENT && is_reserved(p->s + p->tok.name, p->tok.name_len))
		return fail(p, WEFT_EINVAL, off,
		            "expected an expression; '%.*s' is a reserved word (quote it to use "
		            "it as a key)",
		            (int)p->tok.name_len, p->s + p->tok.name);
	if (p->tok.t != T_IDENT && p->tok.t != T_STR)
		return fail(p, WEFT_EINVAL, off,
		            p->tok.t == T_EOF ? "expected an expression, found end of input"
		                              : "expected an expression");
	if ((rc = count_node(p, off)) != WEFT_OK || (rc = parse_path(p, &n.a, &n.n)) != WEFT_OK)
		return rc;
	if (p->tok.t >= T_EQ && p->tok.t <= T_GE) {
		n.kind = N_CMP;
		n.op = (uint8_t)(p->tok.t - T_EQ);
		if ((rc = next(p)) != WEFT_OK || (rc = parse_rhs(p, &n, op_text[n.op])) != WEFT_OK)
			return rc;
	} else if (is_kw(p, "in")) {
		n.kind = N_IN;
		if ((rc = next(p)) != WEFT_OK)
			return rc;
		if (p->tok.t == T_PARAM) {
			n.param = 1;
			if ((rc = param_ref(p, true, &n.val)) != WEFT_OK ||
			    (rc = next(p)) != WEFT_OK)
				return rc;
		} else if (p->tok.t == T_LBRACK) {
			n.val = (uint32_t)p->pool.len;
			if ((rc = parse_list(p)) != WEFT_OK)
				return rc;
			n.val_len = (uint32_t)p->pool.len - n.val;
		} else {
			return fail(p, WEFT_EINVAL, p->tok.off,
			            "expected '[' or a $parameter after 'in'");
		}
	} else if (is_kw(p, "contains")) {
		n.kind = N_CONTAINS;
		if ((rc = next(p)) != WEFT_OK || (rc = parse_rhs(p, &n, "contains")) != WEFT_OK)
			return rc;
	} else {
		return fail(p, WEFT_EINVAL, p->tok.off,
		            "expected '==', '!=', '<', '<=', '>', '>=', 'in' or 'contains' after "
		            "field path");
	}
	return add_node(p, &n, out);
}

static int parse_not(struct parser *p, uint32_t *out)
{
	struct pnode n;
	size_t off = p->tok.off;
	int rc;

	if (!is_kw(p, "not"))
		return parse_primary(p, out);
	memset(&n, 0, sizeof(n));
	n.kind = N_NOT;
	if ((rc = enter(p, off)) != WEFT_OK || (rc = count_node(p, off)) != WEFT_OK ||
	    (rc = next(p)) != WEFT_OK || (rc = parse_not(p, &n.a)) != WEFT_OK)
		return rc;
	p->depth--;
	return add_node(p, &n, out);
}

/* sub (kw sub)*, as one n-ary node of `kind` with chains of the same kind
 * among its operands spliced in. */
static int parse_chain(struct parser *p, uint8_t kind, const char *kw,
                       int (*sub)(struct parser *, uint32_t *), uint32_t *out)
{
	uint32_t base = p->sp, i, n;
	struct pnode node;
	int rc;

	if ((rc = sub(p, &i)) != WEFT_OK)
		return rc;
	if (!is_kw(p, kw)) {
		*out = i;
		return WEFT_OK;
	}
	if ((rc = push_flat(p, kind, i)) != WEFT_OK)
		goto out;
	while (is_kw(p, kw)) {
		if ((rc = count_node(p, p->tok.off)) != WEFT_OK || (rc = next(p)) != WEFT_OK ||
		    (rc = sub(p, &i)) != WEFT_OK || (rc = push_flat(p, kind, i)) != WEFT_OK)
			goto out;
	}
	n = p->sp - base;
	if ((rc = grow(p, (void **)&p->kids, &p->kcap, p->nkids + n, sizeof(*p->kids))) != WEFT_OK)
		goto out;
	memcpy(p->kids + p->nkids, p->stack + base, n * sizeof(*p->kids));
	memset(&node, 0, sizeof(node));
	node.kind = kind;
	node.a = p->nkids;
	node.n = n;
	p->nkids += n;
	rc = add_node(p, &node, out);
out:
	p->sp = base;
	return rc;
}

static int parse_and(struct parser *p, uint32_t *out)
{
	return parse_chain(p, N_AND, "and", parse_not, out);
}

static int parse_or(struct parser *p, uint32_t *out)
{
	return parse_chain(p, N_OR, "or", parse_and, out);
}

/* The whole text: a predicate and, when q is not NULL, the query clauses. */
static int parse_top(struct parser *p, struct weft_query *q, uint32_t *root)
{
	const char *expect = q ? "expected 'and', 'or', 'order by', 'limit' or end of input"
	                       : "expected 'and', 'or' or end of input";
	bool clause;
	int rc;

	if ((rc = next(p)) != WEFT_OK)
		return rc;
	clause = is_kw(p, "order") || is_kw(p, "limit");
	if (clause && !q)
		return fail(p, WEFT_EINVAL, p->tok.off,
		            "'order by' and 'limit' are only allowed in a query");
	if (p->tok.t == T_EOF || clause) {
		struct pnode n;

		memset(&n, 0, sizeof(n));
		n.kind = N_TRUE;
		rc = add_node(p, &n, root);
	} else {
		rc = parse_or(p, root);
	}
	if (rc != WEFT_OK)
		return rc;
	if (q && is_kw(p, "order")) {
		if ((rc = next(p)) != WEFT_OK)
			return rc;
		if (!is_kw(p, "by"))
			return fail(p, WEFT_EINVAL, p->tok.off, "expected 'by' after 'order'");
		if ((rc = next(p)) != WEFT_OK)
			return rc;
		for (;;) {
			struct okey *k = &q->keys[q->nkeys];

			if (q->nkeys == WEFT_QUERY_MAX_ORDER)
				return fail(p, WEFT_ETOOBIG, p->tok.off,
				            "more than %d order by keys", WEFT_QUERY_MAX_ORDER);
			if ((rc = parse_path(p, &k->seg, &k->nseg)) != WEFT_OK)
				return rc;
			k->desc = false;
			if (is_kw(p, "asc") || is_kw(p, "desc")) {
				k->desc = is_kw(p, "desc");
				if ((rc = next(p)) != WEFT_OK)
					return rc;
			}
			q->nkeys++;
			if (p->tok.t != T_COMMA)
				break;
			if ((rc = next(p)) != WEFT_OK)
				return rc;
		}
		expect = "expected ',', 'asc', 'desc', 'limit' or end of input";
	}
	if (q && is_kw(p, "limit")) {
		if ((rc = next(p)) != WEFT_OK)
			return rc;
		if (p->tok.t != T_INT || p->tok.i < 0)
			return fail(p, WEFT_EINVAL, p->tok.off,
			            "expected a non-negative integer after 'limit'");
		q->has_limit = true;
		q->limit = (uint64_t)p->tok.i;
		if ((rc = next(p)) != WEFT_OK)
			return rc;
		expect = "expected end of input";
	}
	if (p->tok.t != T_EOF) {
		if (!q && (is_kw(p, "order") || is_kw(p, "limit")))
			return fail(p, WEFT_EINVAL, p->tok.off,
			            "'order by' and 'limit' are only allowed in a query");
		return fail(p, WEFT_EINVAL, p->tok.off, "%s", expect);
	}
	return WEFT_OK;
}

void weft__pred_free(struct weft_pred *p)
{
	if (!p)
		return;
	weft__free(p->alloc, p->nodes);
	weft__free(p->alloc, p->kids);
	weft__free(p->alloc, p->segs);
	weft__free(p->alloc, p->pool);
	weft__free(p->alloc, p);
}

void weft__query_free(struct weft_query *q)
{
	if (!q)
		return;
	weft__pred_free(q->pred);
	weft__free(q->alloc, q);
}

/* Parses text into a new predicate (and q's clauses when q is not NULL),
 * then checks the length of the canonical form. */
static int compile(const struct weft_alloc *a, const char *text, size_t len, struct weft_query *q,
                   struct weft_pred **out, char *err, size_t errlen)
{
	struct parser p;
	struct weft_pred *pred = NULL;
	struct mp_buf canon;
	size_t pool_len;
	int rc;

	memset(&p, 0, sizeof(p));
	p.a = a;
	p.s = text;
	p.len = len;
	p.err = err;
	p.errlen = errlen;
	weft__mp_buf_init(&p.sb, a, 0);
	weft__mp_buf_init(&p.nb, a, 0);
	weft__mp_buf_init(&p.pool, a, 0);
	weft__mp_buf_init(&canon, a, WEFT_PRED_MAX_TEXT);
	if (len > WEFT_PRED_MAX_TEXT) {
		char msg[64];

		snprintf(msg, sizeof(msg), "text longer than %d bytes", WEFT_PRED_MAX_TEXT);
		set_msg(&p, WEFT_ETOOBIG, msg);
		rc = p.rc;
		goto out;
	}
	if (!(pred = weft__zalloc(a, sizeof(*pred)))) {
		rc = oom(&p);
		goto out;
	}
	pred->alloc = a;
	/* one byte first, so the pool is never NULL and offsets are never 0 */
	weft__mp_write_nil(&p.pool);
	if (p.pool.err) {
		rc = oom(&p);
		goto out;
	}
	if ((rc = parse_top(&p, q, &pred->root)) != WEFT_OK)
		goto out;
	pred->nodes = p.nodes;
	pred->kids = p.kids;
	pred->segs = p.segs;
	p.nodes = NULL;
	p.kids = NULL;
	p.segs = NULL;
	pred->pool = weft__mp_buf_take(&p.pool, &pool_len);
	pred->nparams = p.nparams;
	memcpy(pred->params, p.params, sizeof(p.params));
	memcpy(pred->param_array, p.param_array, sizeof(p.param_array));
	if (q) {
		q->pred = pred;
		rc = weft__query_format(q, &canon);
		q->pred = NULL;
	} else {
		rc = weft__pred_format(pred, &canon);
	}
	if (rc == WEFT_ETOOBIG) {
		char msg[64];

		snprintf(msg, sizeof(msg), "canonical form longer than %d bytes",
		         WEFT_PRED_MAX_TEXT);
		set_msg(&p, WEFT_ETOOBIG, msg);
	} else if (rc != WEFT_OK) {
		oom(&p);
	}
	rc = p.rc;
out:
	weft__mp_buf_free(&canon);
	weft__mp_buf_free(&p.sb);
	weft__mp_buf_free(&p.nb);
	weft__mp_buf_free(&p.pool);
	weft__free(a, p.nodes);
	weft__free(a, p.kids);
	weft__free(a, p.segs);
	weft__free(a, p.stack);
	if (rc == WEFT_OK)
		*out = pred;
	else
		weft__pred_free(pred);
	return rc;
}

int weft__pred_compile(const struct weft_alloc *a, const char *text, size_t len,
                       struct weft_pred **out, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!out || (!text && len)) {
		if (err && errlen)
			snprintf(err, errlen, "invalid argument");
		return WEFT_EINVAL;
	}
	return compile(a ? a : weft__alloc_default(), text ? text : "", len, NULL, out, err,
	               errlen);
}

int weft__query_parse(const struct weft_alloc *a, const char *text, size_t len,
                      struct weft_query **out, char *err, size_t errlen)
{
	struct weft_query *q;
	struct weft_pred *pred;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!out || (!text && len)) {
		if (err && errlen)
			snprintf(err, errlen, "invalid argument");
		return WEFT_EINVAL;
	}
	if (!a)
		a = weft__alloc_default();
	if (!(q = weft__zalloc(a, sizeof(*q)))) {
		if (err && errlen)
			snprintf(err, errlen, "out of memory");
		return WEFT_ENOMEM;
	}
	q->alloc = a;
	rc = compile(a, text ? text : "", len, q, &pred, err, errlen);
	if (rc != WEFT_OK) {
		weft__query_free(q);
		return rc;
	}
	q->pred = pred;
	*out = q;
	return WEFT_OK;
}

size_t weft__pred_param_count(const struct weft_pred *p)
{
	return p->nparams;
}

const char *weft__pred_param_name(const struct weft_pred *p, size_t i)
{
	return i < p->nparams ? (const char *)p->pool + p->params[i].off : NULL;
}

const struct weft_pred *weft__query_pred(const struct weft_query *q)
{
	return q->pred;
}

bool weft__query_limit(const struct weft_query *q, uint64_t *n)
{
	if (q->has_limit && n)
		*n = q->limit;
	return q->has_limit;
}

size_t weft__query_order_count(const struct weft_query *q)
{
	return q->nkeys;
}

/* ---- the total order over values ---- */

enum rank { R_NONE, R_NULL, R_BOOL, R_NUM, R_STR, R_BIN, R_ARRAY, R_MAP };

static enum rank rank_of(enum mp_type t)
{
	switch (t) {
	case MP_NIL:
		return R_NULL;
	case MP_BOOL:
		return R_BOOL;
	case MP_INT:
	case MP_UINT:
	case MP_FLOAT:
		return R_NUM;
	case MP_STR:
		return R_STR;
	case MP_BIN:
		return R_BIN;
	case MP_ARRAY:
		return R_ARRAY;
	case MP_MAP:
		return R_MAP;
	}
	return R_NONE;
}

static enum rank slice_rank(struct slice v)
{
	struct mp_reader r;
	enum mp_type t;

	weft__mp_reader_init(&r, v.p, v.len);
	return weft__mp_peek(&r, &t) == WEFT_OK ? rank_of(t) : R_NONE;
}

static int sign3(long long c)
{
	return (c > 0) - (c < 0);
}

static int bytes_cmp(const void *a, size_t al, const void *b, size_t bl)
{
	size_t m = al < bl ? al : bl;
	int c = m ? memcmp(a, b, m) : 0;

	if (c)
		return sign3(c);
	return (al > bl) - (al < bl);
}

/* A number: an int64, a uint64 above INT64_MAX, or a double. */
struct num {
	enum mp_type t; /* MP_INT, MP_UINT or MP_FLOAT */
	int64_t i;      /* MP_INT */
	uint64_t u;     /* MP_UINT: above INT64_MAX */
	double d;       /* MP_FLOAT */
};

static void read_num(struct mp_reader *r, enum mp_type t, struct num *x)
{
	memset(x, 0, sizeof(*x));
	x->t = t;
	if (t == MP_FLOAT) {
		(void)weft__mp_read_double(r, &x->d);
	} else if (t == MP_INT) {
		(void)weft__mp_read_int(r, &x->i);
	} else {
		(void)weft__mp_read_uint(r, &x->u);
		if (x->u <= INT64_MAX) {
			x->t = MP_INT;
			x->i = (int64_t)x->u;
		}
	}
}

/* Doubles: numeric order, -0.0 == 0.0, NaN above +Infinity and equal to
 * itself. */
static int cmp_dd(double a, double b)
{
	bool an = isnan(a), bn = isnan(b);

	if (an || bn)
		return (int)an - (int)bn;
	return (a > b) - (a < b);
}

/* int64 against double, exactly (no rounding of i to double). */
static int cmp_id(int64_t i, double d)
{
	double t;
	int64_t ti;

	if (isnan(d) || d >= 9223372036854775808.0)
		return -1;
	if (d < -9223372036854775808.0)
		return 1;
	t = trunc(d); /* in [-2^63, 2^63): exact as int64 */
	ti = (int64_t)t;
	if (i != ti)
		return i < ti ? -1 : 1;
	return (t > d) - (t < d);
}

/* uint64 above INT64_MAX against double, exactly. */
static int cmp_ud(uint64_t u, double d)
{
	uint64_t tu;

	if (isnan(d) || d >= 18446744073709551616.0)
		return -1;
	if (d < 9223372036854775808.0)
		return 1;
	tu = (uint64_t)d; /* integral: doubles from 2^52 up have no fraction */
	return (u > tu) - (u < tu);
}

static int cmp_num(const struct num *a, const struct num *b)
{
	if (a->t == MP_FLOAT && b->t == MP_FLOAT)
		return cmp_dd(a->d, b->d);
	if (a->t == MP_FLOAT)
		return -cmp_num(b, a);
	if (b->t == MP_FLOAT)
		return a->t == MP_INT ? cmp_id(a->i, b->d) : cmp_ud(a->u, b->d);
	if (a->t == MP_INT && b->t == MP_INT)
		return (a->i > b->i) - (a->i < b->i);
	if (a->t == MP_UINT && b->t == MP_UINT)
		return (a->u > b->u) - (a->u < b->u);
	return a->t == MP_INT ? -1 : 1; /* every uint64 here is > INT64_MAX */
}

static int val_cmp(struct slice a, struct slice b);

/* One map entry. */
struct ent {
	struct slice k, v; /* key and value */
};

static int ent_cmp(const struct ent *a, const struct ent *b)
{
	int c = val_cmp(a->k, b->k);

	return c ? c : val_cmp(a->v, b->v);
}

static bool read_ent(struct mp_reader *r, struct ent *e)
{
	return weft__mp_skip(r, &e->k.p, &e->k.len) == WEFT_OK &&
	       weft__mp_skip(r, &e->v.p, &e->v.len) == WEFT_OK;
}

/*
 * Walks a map's entries in ascending order (key, then value) without
 * allocating: a map whose entries are already strictly ascending (every
 * map the core's encoder writes) is walked in place; any other is walked
 * by selection, each step finding the least entry above the previous one
 * and how many copies of it the map holds (O(n^2) comparisons).
 */
struct miter {
	struct mp_reader start; /* the first entry */
	struct mp_reader r;     /* sorted: the next entry */
	uint32_t n;             /* entries */
	uint32_t i;             /* sorted: entries walked */
	bool sorted;
	bool has_prev;
	struct ent prev; /* unsorted: the last entry returned */
};

static void miter_init(struct miter *it, const struct mp_reader *r, uint32_t n)
{
	struct mp_reader s = *r;
	struct ent prev, cur;

	memset(it, 0, sizeof(*it));
	it->start = it->r = *r;
	it->n = n;
	it->sorted = true;
	for (uint32_t i = 0; i < n; i++) {
		if (!read_ent(&s, &cur))
			break;
		if (i > 0 && ent_cmp(&prev, &cur) >= 0) {
			it->sorted = false;
			break;
		}
		prev = cur;
	}
}

static bool miter_next(struct miter *it, struct ent *out, uint32_t *mult)
{
	struct mp_reader s;
	struct ent cur;
	bool have = false;
	uint32_t m = 0;

	if (it->sorted) {
		if (it->i == it->n || !read_ent(&it->r, out))
			return false;
		it->i++;
		*mult = 1;
		return true;
	}
	s = it->start;
	for (uint32_t i = 0; i < it->n; i++) {
		int c;

		if (!read_ent(&s, &cur))
			break;
		if (it->has_prev && ent_cmp(&cur, &it->prev) <= 0)
			continue;
		c = have ? ent_cmp(&cur, out) : -1;
		if (c < 0) {
			*out = cur;
			m = 1;
			have = true;
		} else if (c == 0) {
			m++;
		}
	}
	if (have) {
		it->prev = *out;
		it->has_prev = true;
		*mult = m;
	}
	return have;
}

/* Maps: their ascending entry sequences, lexicographically. */
static int map_cmp(const struct mp_reader *ra, uint32_t na, const struct mp_reader *rb, uint32_t nb)
{
	struct miter a, b;
	struct ent ea, eb, e;
	uint32_t ma, mb, m;

	miter_init(&a, ra, na);
	miter_init(&b, rb, nb);
	for (;;) {
		bool ha = miter_next(&a, &ea, &ma), hb = miter_next(&b, &eb, &mb);
		int c;

		if (!ha || !hb)
			return (int)ha - (int)hb;
		if ((c = ent_cmp(&ea, &eb)) != 0)
			return c;
		/* The one with fewer copies of the entry goes on with a greater
		 * entry where the other still has a copy, or ends. */
		if (ma < mb)
			return miter_next(&a, &e, &m) ? 1 : -1;
		if (ma > mb)
			return miter_next(&b, &e, &m) ? -1 : 1;
	}
}

/* The total order on two well-formed values (docs/PREDICATES.md). */
static int val_cmp(struct slice a, struct slice b)
{
	struct mp_reader ra, rb;
	enum mp_type ta, tb;
	enum rank ka, kb;

	weft__mp_reader_init(&ra, a.p, a.len);
	weft__mp_reader_init(&rb, b.p, b.len);
	if (weft__mp_peek(&ra, &ta) != WEFT_OK || weft__mp_peek(&rb, &tb) != WEFT_OK)
		return 0; /* cannot happen: both passed mp_skip */
	ka = rank_of(ta);
	kb = rank_of(tb);
	if (ka != kb)
		return ka < kb ? -1 : 1;
	switch (ka) {
	case R_BOOL: {
		bool x = false, y = false;

		(void)weft__mp_read_bool(&ra, &x);
		(void)weft__mp_read_bool(&rb, &y);
		return (int)x - (int)y;
	}
	case R_NUM: {
		struct num x, y;

		read_num(&ra, ta, &x);
		read_num(&rb, tb, &y);
		return cmp_num(&x, &y);
	}
	case R_STR: {
		const char *x = NULL, *y = NULL;
		size_t xl = 0, yl = 0;

		(void)weft__mp_read_str(&ra, &x, &xl);
		(void)weft__mp_read_str(&rb, &y, &yl);
		return bytes_cmp(x, xl, y, yl);
	}
	case R_BIN: {
		const void *x = NULL, *y = NULL;
		size_t xl = 0, yl = 0;

		(void)weft__mp_read_bin(&ra, &x, &xl);
		(void)weft__mp_read_bin(&rb, &y, &yl);
		return bytes_cmp(x, xl, y, yl);
	}
	case R_ARRAY: {
		uint32_t na = 0, nb = 0;

		(void)weft__mp_read_array(&ra, &na);
		(void)weft__mp_read_array(&rb, &nb);
		for (uint32_t i = 0; i < na && i < nb; i++) {
			struct slice x, y;
			int c;

			if (weft__mp_skip(&ra, &x.p, &x.len) != WEFT_OK ||
			    weft__mp_skip(&rb, &y.p, &y.len) != WEFT_OK)
				return 0;
			if ((c = val_cmp(x, y)) != 0)
				return c;
		}
		return (na > nb) - (na < nb);
	}
	case R_MAP: {
		uint32_t na = 0, nb = 0;

		(void)weft__mp_read_map(&ra, &na);
		(void)weft__mp_read_map(&rb, &nb);
		return map_cmp(&ra, na, &rb, nb);
	}
	default:
		return 0; /* null, or nothing */
	}
}

/* Whether v[0..len) is exactly one well-formed value. */
static bool one_value(const void *v, size_t len, struct slice *s)
{
	struct mp_reader r;

	if (!v || !len)
		return false;
	weft__mp_reader_init(&r, v, len);
	return weft__mp_skip(&r, &s->p, &s->len) == WEFT_OK && s->len == len;
}

int weft__pred_value_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
	struct slice x, y;
	bool hx = one_value(a, alen, &x), hy = one_value(b, blen, &y);

	if (hx && hy)
		return val_cmp(x, y);
	return (int)hx - (int)hy;
}

/* ---- evaluation ---- */

/*
 * The value at a path in doc: 1 (found, *v set and well-formed), 0 (absent:
 * a key is missing or a value on the way is not a map) or WEFT_EINVAL
 * (doc is not a map, or bytes read on the way are malformed). A map with a
 * key more than once yields the first. Keys that are not strings are
 * skipped.
 */
static int resolve(const struct weft_pred *p, uint32_t seg, uint32_t nseg, const uint8_t *doc,
                   size_t len, struct slice *v)
{
	struct mp_reader r;
	uint32_t n;

	weft__mp_reader_init(&r, doc, len);
	if (weft__mp_read_map(&r, &n) != WEFT_OK)
		return WEFT_EINVAL;
	for (uint32_t s = 0; s < nseg; s++) {
		const struct span *k = &p->segs[seg + s];
		bool found = false;
		enum mp_type t;

		for (uint32_t i = 0; i < n && !found; i++) {
			if (weft__mp_peek(&r, &t) != WEFT_OK)
				return WEFT_EINVAL;
			if (t == MP_STR) {
				const char *ks;
				size_t kl;

				if (weft__mp_read_str(&r, &ks, &kl) != WEFT_OK)
					return WEFT_EINVAL;
				found = kl == k->len &&
				        (kl == 0 || memcmp(ks, p->pool + k->off, kl) == 0);
			} else if (weft__mp_skip(&r, NULL, NULL) != WEFT_OK) {
				return WEFT_EINVAL;
			}
			if (!found && weft__mp_skip(&r, NULL, NULL) != WEFT_OK)
				return WEFT_EINVAL;
		}
		if (!found)
			return 0;
		if (s + 1 == nseg)
			return weft__mp_skip(&r, &v->p, &v->len) == WEFT_OK ? 1 : WEFT_EINVAL;
		if (weft__mp_peek(&r, &t) != WEFT_OK)
			return WEFT_EINVAL;
		if (t != MP_MAP)
			return 0;
		if (weft__mp_read_map(&r, &n) != WEFT_OK)
			return WEFT_EINVAL;
	}
	return 0; /* no segments: not produced by the parser */
}

/* Whether the array arr has an element equal to x. */
static bool array_has(struct slice arr, struct slice x)
{
	struct mp_reader r;
	uint32_t n;

	weft__mp_reader_init(&r, arr.p, arr.len);
	if (weft__mp_read_array(&r, &n) != WEFT_OK)
		return false;
	for (uint32_t i = 0; i < n; i++) {
		struct slice e;

		if (weft__mp_skip(&r, &e.p, &e.len) != WEFT_OK)
			return false;
		if (val_cmp(e, x) == 0)
			return true;
	}
	return false;
}

/* The longest suffix of x[0..m) that is maximal in the byte order (or,
 * with `rev`, in the reversed order); its period goes to *per. */
static ptrdiff_t max_suffix(const uint8_t *x, ptrdiff_t m, ptrdiff_t *per, bool rev)
{
	ptrdiff_t ms = -1, j = 0, k = 1, p = 1;

	while (j + k < m) {
		uint8_t a = x[j + k], b = x[ms + k];

		if (rev ? a > b : a < b) {
			j += k;
			k = 1;
			p = j - ms;
		} else if (a == b) {
			if (k != p) {
				k++;
			} else {
				j += p;
				k = 1;
			}
		} else {
			ms = j++;
			k = p = 1;
		}
	}
	*per = p;
	return ms;
}

/*
 * Whether needle x[0..m) occurs in y[0..n), 2 <= m <= n: the two-way
 * algorithm (Crochemore and Perrin, 1991), linear time and constant space,
 * so a hostile pattern cannot make `contains` quadratic.
 */
static bool two_way(const uint8_t *y, ptrdiff_t n, const uint8_t *x, ptrdiff_t m)
{
	ptrdiff_t p, q, i = max_suffix(x, m, &p, false), j = max_suffix(x, m, &q, true);
	ptrdiff_t ell = i > j ? i : j, per = i > j ? p : q;

	if (memcmp(x, x + per, (size_t)(ell + 1)) == 0) {
		ptrdiff_t memory = -1;

		for (j = 0; j <= n - m;) {
			i = (ell > memory ? ell : memory) + 1;
			while (i < m && x[i] == y[i + j])
				i++;
			if (i >= m) {
				i = ell;
				while (i > memory && x[i] == y[i + j])
					i--;
				if (i <= memory)
					return true;
				j += per;
				memory = m - per - 1;
			} else {
				j += i - ell;
				memory = -1;
			}
		}
		return false;
	}
	per = (ell + 1 > m - ell - 1 ? ell + 1 : m - ell - 1) + 1;
	for (j = 0; j <= n - m;) {
		i = ell + 1;
		while (i < m && x[i] == y[i + j])
			i++;
		if (i >= m) {
			i = ell;
			while (i >= 0 && x[i] == y[i + j])
				i--;
			if (i < 0)
				return true;
			j += per;
		} else {
			j += i - ell;
		}
	}
	return false;
}

static bool bytes_contain(const uint8_t *h, size_t hl, const uint8_t *n, size_t nl)
{
	if (nl == 0)
		return true;
	if (nl > hl)
		return false;
	if (nl == 1)
		return memchr(h, n[0], hl) != NULL;
	return two_way(h, (ptrdiff_t)hl, n, (ptrdiff_t)nl);
}

/* `f contains v`: an array element equal to v, or a substring. */
static bool contains(struct slice f, struct slice v)
{
	struct mp_reader rf, rv;
	const char *hs, *ns;
	size_t hl, nl;

	if (slice_rank(f) == R_ARRAY)
		return array_has(f, v);
	if (slice_rank(f) != R_STR || slice_rank(v) != R_STR)
		return false;
	weft__mp_reader_init(&rf, f.p, f.len);
	weft__mp_reader_init(&rv, v.p, v.len);
	if (weft__mp_read_str(&rf, &hs, &hl) != WEFT_OK ||
	    weft__mp_read_str(&rv, &ns, &nl) != WEFT_OK)
		return false;
	return bytes_contain((const uint8_t *)hs, hl, (const uint8_t *)ns, nl);
}

static bool cmp_holds(uint8_t op, struct slice f, struct slice v)
{
	int c;

	if (op == OP_EQ || op == OP_NE)
		return (val_cmp(f, v) == 0) == (op == OP_EQ);
	if (slice_rank(f) != slice_rank(v))
		return false;
	c = val_cmp(f, v);
	switch (op) {
	case OP_LT:
		return c < 0;
	case OP_LE:
		return c <= 0;
	case OP_GT:
		return c > 0;
	default:
		return c >= 0;
	}
}

struct ectx {
	const struct weft_pred *p;              /* what is evaluated */
	const uint8_t *doc;                     /* the document map */
	size_t len;                             /* its bytes */
	struct slice par[WEFT_PRED_MAX_PARAMS]; /* bound, checked values */
};

static int eval_node(const struct ectx *c, uint32_t i, bool *m)
{
	const struct weft_pred *p = c->p;
	const struct pnode *n = &p->nodes[i];
	struct slice f, v;
	bool x;
	int rc;

	switch (n->kind) {
	case N_TRUE:
	case N_FALSE:
		*m = n->kind == N_TRUE;
		return WEFT_OK;
	case N_AND:
	case N_OR:
		for (uint32_t k = 0; k < n->n; k++) {
			if ((rc = eval_node(c, p->kids[n->a + k], &x)) != WEFT_OK)
				return rc;
			if (x == (n->kind == N_OR)) {
				*m = x;
				return WEFT_OK;
			}
		}
		*m = n->kind == N_AND;
		return WEFT_OK;
	case N_NOT:
		if ((rc = eval_node(c, n->a, &x)) != WEFT_OK)
			return rc;
		*m = !x;
		return WEFT_OK;
	default:
		break;
	}
	rc = resolve(p, n->a, n->n, c->doc, c->len, &f);
	if (rc < 0)
		return rc;
	if (n->kind == N_EXISTS) {
		*m = rc == 1;
		return WEFT_OK;
	}
	if (rc == 0) {
		*m = n->kind == N_CMP && n->op == OP_NE;
		return WEFT_OK;
	}
	if (n->param) {
		v = c->par[n->val];
	} else {
		v.p = p->pool + n->val;
		v.len = n->val_len;
	}
	if (n->kind == N_CMP)
		*m = cmp_holds(n->op, f, v);
	else if (n->kind == N_IN)
		*m = array_has(v, f);
	else
		*m = contains(f, v);
	return WEFT_OK;
}

int weft__pred_eval(const struct weft_pred *p, const void *doc, size_t doc_len,
                    const struct weft_pred_param *params, size_t nparams, bool *match)
{
	struct ectx c;
	struct mp_reader r;
	uint32_t n;
	bool m;
	int rc;

	if (!p || !match || !doc || (!params && nparams))
		return WEFT_EINVAL;
	c.p = p;
	c.doc = doc;
	c.len = doc_len;
	for (uint32_t i = 0; i < p->nparams; i++) {
		const char *name = (const char *)p->pool + p->params[i].off;
		size_t len = p->params[i].len;
		const struct weft_pred_param *b = NULL;

		for (size_t k = 0; k < nparams && !b; k++)
			if (params[k].name && params[k].name_len == len &&
			    memcmp(params[k].name, name, len) == 0)
				b = &params[k];
		if (!b || !one_value(b->value, b->value_len, &c.par[i]))
			return WEFT_EINVAL;
		if (p->param_array[i] && slice_rank(c.par[i]) != R_ARRAY)
			return WEFT_EINVAL;
	}
	weft__mp_reader_init(&r, doc, doc_len);
	if (weft__mp_read_map(&r, &n) != WEFT_OK)
		return WEFT_EINVAL;
	if ((rc = eval_node(&c, p->root, &m)) == WEFT_OK)
		*match = m;
	return rc;
}

/* ---- ordering documents ---- */

int weft__query_cmp(const struct weft_query *q, const void *a, size_t alen, const void *b,
                    size_t blen)
{
	const struct weft_pred *p = q->pred;

	for (uint32_t k = 0; k < q->nkeys; k++) {
		const struct okey *o = &q->keys[k];
		struct slice x, y;
		int hx = a ? resolve(p, o->seg, o->nseg, a, alen, &x) : 0;
		int hy = b ? resolve(p, o->seg, o->nseg, b, blen, &y) : 0;
		int c;

		hx = hx == 1; /* errors read as missing */
		hy = hy == 1;
		c = hx && hy ? val_cmp(x, y) : hx - hy;
		if (c)
			return o->desc ? -c : c;
	}
	return 0;
}

/* ---- canonical text ---- */

static void put(struct mp_buf *o, const char *s)
{
	weft__mp_write_raw(o, s, strlen(s));
}

/* A key: bare when it is an identifier (and, for the first key of a path,
 * not a reserved word), else as a canonical JSON string. */
static void fmt_path(const struct weft_pred *p, uint32_t seg, uint32_t n, struct mp_buf *o)
{
	for (uint32_t i = 0; i < n; i++) {
		const struct span *s = &p->segs[seg + i];
		const char *k = (const char *)p->pool + s->off;

		if (i > 0)
			put(o, ".");
		if (is_ident(k, s->len) && !(i == 0 && is_reserved(k, s->len)))
			weft__mp_write_raw(o, k, s->len);
		else
			weft__json_write_str(o, k, s->len);
	}
}

/* A literal from the pool (built by the parser, so well-formed). */
static void fmt_literal(struct mp_buf *o, struct mp_reader *r)
{
	enum mp_type t;

	if (weft__mp_peek(r, &t) != WEFT_OK)
		return;
	switch (t) {
	case MP_NIL:
		(void)weft__mp_read_nil(r);
		put(o, "null");
		break;
	case MP_BOOL: {
		bool b = false;

		(void)weft__mp_read_bool(r, &b);
		put(o, b ? "true" : "false");
		break;
	}
	case MP_INT:
	case MP_UINT:
	case MP_FLOAT: {
		struct num x;
		size_t at = o->len;
		bool frac = false;

		read_num(r, t, &x);
		if (x.t == MP_INT) {
			weft__json_write_int(o, x.i);
			break;
		}
		if (x.t == MP_UINT) {
			weft__json_write_uint(o, x.u);
			break;
		}
		/* the shortest round-trip form; ".0" keeps an integral value a
		 * float when read back */
		weft__json_write_double(o, x.d);
		for (size_t i = at; i < o->len && !o->err; i++)
			if (o->data[i] == '.' || o->data[i] == 'e' || o->data[i] == 'E')
				frac = true;
		if (!frac)
			put(o, ".0");
		break;
	}
	case MP_STR: {
		const char *s = NULL;
		size_t n = 0;

		(void)weft__mp_read_str(r, &s, &n);
		weft__json_write_str(o, s, n);
		break;
	}
	case MP_ARRAY: {
		uint32_t n = 0;

		(void)weft__mp_read_array(r, &n);
		put(o, "[");
		for (uint32_t i = 0; i < n; i++) {
			if (i > 0)
				put(o, ", ");
			fmt_literal(o, r);
		}
		put(o, "]");
		break;
	}
	default:
		(void)weft__mp_skip(r, NULL, NULL); /* not produced by the parser */
		break;
	}
}

static int node_prec(uint8_t kind)
{
	return kind == N_OR ? 1 : kind == N_AND ? 2 : kind == N_NOT ? 3 : 4;
}

static void fmt_node(const struct weft_pred *p, uint32_t i, int min_prec, struct mp_buf *o)
{
	const struct pnode *n = &p->nodes[i];
	bool paren = node_prec(n->kind) < min_prec;

	if (paren)
		put(o, "(");
	switch (n->kind) {
	case N_TRUE:
		put(o, "true");
		break;
	case N_FALSE:
		put(o, "false");
		break;
	case N_AND:
	case N_OR:
		for (uint32_t k = 0; k < n->n; k++) {
			if (k > 0)
				put(o, n->kind == N_AND ? " and " : " or ");
			fmt_node(p, p->kids[n->a + k], node_prec(n->kind) + 1, o);
		}
		break;
	case N_NOT:
		put(o, "not ");
		fmt_node(p, n->a, 3, o);
		break;
	case N_EXISTS:
		put(o, "exists(");
		fmt_path(p, n->a, n->n, o);
		put(o, ")");
		break;
	default:
		fmt_path(p, n->a, n->n, o);
		put(o, " ");
		put(o, n->kind == N_IN         ? "in"
		       : n->kind == N_CONTAINS ? "contains"
		                               : op_text[n->op]);
		put(o, " ");
		if (n->param) {
			const struct span *s = &p->params[n->val];

			put(o, "$");
			weft__mp_write_raw(o, p->pool + s->off, s->len);
		} else {
			struct mp_reader r;

			weft__mp_reader_init(&r, p->pool + n->val, n->val_len);
			fmt_literal(o, &r);
		}
		break;
	}
	if (paren)
		put(o, ")");
}

int weft__pred_format(const struct weft_pred *p, struct mp_buf *out)
{
	fmt_node(p, p->root, 0, out);
	return out->err;
}

int weft__query_format(const struct weft_query *q, struct mp_buf *out)
{
	const struct weft_pred *p = q->pred;
	bool pred = !(p->nodes[p->root].kind == N_TRUE && (q->nkeys || q->has_limit));

	if (pred)
		fmt_node(p, p->root, 0, out);
	if (q->nkeys) {
		put(out, pred ? " order by " : "order by ");
		for (uint32_t k = 0; k < q->nkeys; k++) {
			if (k > 0)
				put(out, ", ");
			fmt_path(p, q->keys[k].seg, q->keys[k].nseg, out);
			if (q->keys[k].desc)
				put(out, " desc");
		}
	}
	if (q->has_limit) {
		if (pred || q->nkeys)
			put(out, " ");
		put(out, "limit ");
		weft__json_write_uint(out, q->limit);
	}
	return out->err;
}
