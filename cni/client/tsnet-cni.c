/*
 * tsnet's CNI plugin executable: a thin client of the tsnet daemon, so a runtime's call costs a
 * small C program and one round trip over a unix socket instead of starting Node.js each time.
 *
 * It sends one HTTP/1.1 request to the daemon's socket (the configuration's "socket", else
 * $TSNET_SOCKET, else /run/docker/plugins/tsnet.sock):
 *   POST /Cni.Exec, the network configuration (stdin) as the body, each CNI_* variable the
 *   runtime set as a header X-CNI-<NAME>
 * and prints the reply body (the CNI result or error) on stdout, exiting with the code the daemon
 * puts in the X-CNI-Exit header. VERSION is answered here, without the daemon. When no daemon
 * answers, it prints a CNI error (code 11, "try again later") saying how to start one.
 *
 * Whatever the input or the other end of the socket does, what it prints is one JSON object (or
 * nothing, for a successful DEL/CHECK/GC/STATUS) and a failure exits non-zero:
 *  - the configuration must be one JSON object; only its top-level "socket" and "cniVersion" count
 *    (a small JSON scanner below skips nested values, so a "socket" inside args or prevResult is
 *    not taken), escapes decoded; a socket path must be absolute and free of control characters;
 *  - a CNI_* value (a header) holds no control character and at most 4096 bytes;
 *  - the reply must be "HTTP/1.x 200", with Content-Length (no chunked encoding), X-CNI-Exit a
 *    decimal 0..255, and the whole body, which must be a JSON object (or empty on success); it is
 *    read up to Content-Length, so a daemon that keeps the connection open does not matter;
 *  - the whole exchange has one deadline (TSNET_CNI_TIMEOUT_MS), however slowly bytes trickle;
 *  - SIGPIPE is ignored: a daemon that closes early is a CNI error, or its reply if it sent one.
 * cni/client/tsnet-cni.test.ts drives a sanitizer build of it with hostile input and servers.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/docker/plugins/tsnet.sock"
#define DEFAULT_VERSION "1.1.0"
#define VERSION_REPLY "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
#define MAX_CONFIG (1 << 20)   /* the daemon's body limit */
#define MAX_HEAD (64 << 10)    /* the reply's status line and headers */
#define MAX_BODY (4 << 20)     /* the reply's body */
#define MAX_VAR 4096           /* one CNI_* value */
#define MAX_DEPTH 512          /* JSON nesting */
#ifndef TSNET_CNI_TIMEOUT_MS   /* one deadline for the whole exchange with the daemon (tests build a short one) */
#define TSNET_CNI_TIMEOUT_MS 120000
#endif

/* the CNI error codes used here (CNI spec, "Error codes") */
enum { ERR_INVALID_ENV = 4, ERR_IO = 5, ERR_DECODE = 6, ERR_INVALID_CONFIG = 7, ERR_TRY_LATER = 11 };

#define REPLY_UNEXPECTED "the tsnet daemon's reply is not what this plugin expects: are the plugin and the daemon from the same tsnet?"

static const char *const VARS[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"};

struct buf {
    char *data;
    size_t len, cap;
};

static int buf_add(struct buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap) cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) return -1;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int buf_str(struct buf *b, const char *s) { return buf_add(b, s, strlen(s)); }

/* --- a minimal JSON scanner: checks the grammar, decodes the top-level strings asked for --- */

/* JSON text being scanned, p moving toward end. */
struct scan {
    const char *p, *end;
};

/* A decoded JSON string: its first sizeof data - 1 bytes kept, NUL-terminated; len is the full length. */
struct text {
    char data[128];
    size_t len;
};

/* A top-level member of the configuration: seen, with a string value, that value. The last one counts, as in JSON.parse. */
struct member {
    int found, is_string;
    struct text value;
};

/* What the client reads of the network configuration. */
struct config {
    int is_object;
    struct member version, socket;
};

static void skip_ws(struct scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

/* The next non-blank character is c: consumed. */
static int eat(struct scan *s, char c) {
    skip_ws(s);
    if (s->p >= s->end || *s->p != c) return 0;
    s->p++;
    return 1;
}

static void text_put(struct text *t, unsigned c) {
    if (!t) return;
    if (t->len + 1 < sizeof t->data) {
        t->data[t->len] = (char)c;
        t->data[t->len + 1] = '\0';
    }
    t->len++;
}

static void text_put_utf8(struct text *t, unsigned cp) {
    if (cp < 0x80) {
        text_put(t, cp);
    } else if (cp < 0x800) {
        text_put(t, 0xC0 | cp >> 6);
        text_put(t, 0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        text_put(t, 0xE0 | cp >> 12);
        text_put(t, 0x80 | (cp >> 6 & 0x3F));
        text_put(t, 0x80 | (cp & 0x3F));
    } else {
        text_put(t, 0xF0 | cp >> 18);
        text_put(t, 0x80 | (cp >> 12 & 0x3F));
        text_put(t, 0x80 | (cp >> 6 & 0x3F));
        text_put(t, 0x80 | (cp & 0x3F));
    }
}

/* Four hex digits after "\u". */
static int scan_hex4(struct scan *s, unsigned *v) {
    if (s->end - s->p < 4) return 0;
    *v = 0;
    for (int i = 0; i < 4; i++, s->p++) {
        char c = *s->p;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        *v = *v << 4 | (unsigned)d;
    }
    return 1;
}

/* The code point of a "\uXXXX" escape (p after the "u"), a surrogate pair joined, a lone surrogate U+FFFD. */
static int scan_unicode_escape(struct scan *s, unsigned *cp) {
    if (!scan_hex4(s, cp)) return 0;
    if (*cp >= 0xDC00 && *cp <= 0xDFFF) *cp = 0xFFFD;
    if (*cp < 0xD800 || *cp > 0xDBFF) return 1;
    /* a high surrogate: joined with a low one in the next escape, if there is one */
    int escape_follows = s->end - s->p >= 2 && s->p[0] == '\\' && s->p[1] == 'u';
    struct scan next = {escape_follows ? s->p + 2 : s->end, s->end};
    unsigned lo;
    if (escape_follows && scan_hex4(&next, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
        s->p = next.p;
    } else {
        *cp = 0xFFFD;
    }
    return 1;
}

/* A string (p at the opening quote), decoded into t when t is not NULL. */
static int scan_string(struct scan *s, struct text *t) {
    if (t) {
        t->len = 0;
        t->data[0] = '\0';
    }
    if (!eat(s, '"')) return 0;
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p++;
        if (c == '"') return 1;
        if (c < 0x20) return 0;
        if (c != '\\') {
            text_put(t, c);
            continue;
        }
        if (s->p >= s->end) return 0;
        unsigned cp;
        switch (*s->p++) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (!scan_unicode_escape(s, &cp)) return 0;
            break;
        default: return 0;
        }
        text_put_utf8(t, cp);
    }
    return 0;
}

static int scan_digits(struct scan *s) {
    const char *start = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
    return s->p > start;
}

static int scan_number(struct scan *s) {
    if (s->p < s->end && *s->p == '-') s->p++;
    if (s->p < s->end && *s->p == '0') s->p++;
    else if (!scan_digits(s)) return 0;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!scan_digits(s)) return 0;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
        if (!scan_digits(s)) return 0;
    }
    return 1;
}

static int scan_literal(struct scan *s, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return 0;
    s->p += n;
    return 1;
}

static int scan_object(struct scan *s, int depth, struct config *top);

static int scan_array(struct scan *s, int depth);

/* Any value; depth counts the objects and arrays around it. */
static int scan_value(struct scan *s, int depth) {
    skip_ws(s);
    if (s->p >= s->end || depth > MAX_DEPTH) return 0;
    switch (*s->p) {
    case '{': return scan_object(s, depth + 1, NULL);
    case '[': return scan_array(s, depth + 1);
    case '"': return scan_string(s, NULL);
    case 't': return scan_literal(s, "true");
    case 'f': return scan_literal(s, "false");
    case 'n': return scan_literal(s, "null");
    default: return scan_number(s);
    }
}

static int scan_array(struct scan *s, int depth) {
    s->p++; /* [ */
    if (eat(s, ']')) return 1;
    do {
        if (!scan_value(s, depth)) return 0;
    } while (eat(s, ','));
    return eat(s, ']');
}

/* The member of the top-level object a key names, if the client reads it. */
static struct member *member_named(struct config *top, const struct text *key) {
    if (!top) return NULL;
    if (key->len == strlen("cniVersion") && strcmp(key->data, "cniVersion") == 0) return &top->version;
    if (key->len == strlen("socket") && strcmp(key->data, "socket") == 0) return &top->socket;
    return NULL;
}

/* An object (p at "{"); top is given for the document's own object only, to collect its members. */
static int scan_object(struct scan *s, int depth, struct config *top) {
    s->p++; /* { */
    if (eat(s, '}')) return 1;
    do {
        struct text key;
        skip_ws(s);
        if (!scan_string(s, &key) || !eat(s, ':')) return 0;
        struct member *m = member_named(top, &key);
        skip_ws(s);
        if (m) {
            m->found = 1;
            m->is_string = s->p < s->end && *s->p == '"';
        }
        int ok = m && m->is_string ? scan_string(s, &m->value) : scan_value(s, depth);
        if (!ok) return 0;
    } while (eat(s, ','));
    return eat(s, '}');
}

/* data is one JSON object, blanks around it allowed; its top-level members go into top (zeroed otherwise). */
static int scan_document(const char *data, size_t len, struct config *top) {
    struct scan s = {data, data + len};
    struct config seen = {0};
    skip_ws(&s);
    int ok = s.p < s.end && *s.p == '{' && scan_object(&s, 1, &seen);
    skip_ws(&s);
    ok = ok && s.p == s.end;
    if (top) {
        *top = ok ? seen : (struct config){0};
        top->is_object = ok;
    }
    return ok;
}

/* The configuration's cniVersion, for an error printed here; DEFAULT_VERSION unless it is a plain version string. */
static const char *version_of(const struct config *c) {
    const struct text *v = &c->version.value;
    if (!c->version.is_string || v->len == 0 || v->len >= sizeof v->data) return DEFAULT_VERSION;
    if (v->len != strspn(v->data, "0123456789.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-+")) return DEFAULT_VERSION;
    return v->data;
}

/* Why a path cannot be the daemon's socket, or NULL when it can. */
static const char *bad_socket_path(const char *path, size_t len) {
    if (len >= sizeof(((struct sockaddr_un *)0)->sun_path)) return "is too long for a unix socket path";
    if (len == 0 || path[0] != '/') return "is not an absolute path";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f) return "holds a control character";
    return NULL;
}

/* --- output --- */

static void put_json_string(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        default:
            if (*p < 0x20) printf("\\u%04x", *p);
            else putchar(*p);
        }
    }
    putchar('"');
}

/* A CNI error object on stdout; returns the exit code for it. */
static int fail(const struct config *c, int code, const char *msg, const char *details) {
    printf("{\"cniVersion\":");
    put_json_string(version_of(c));
    printf(",\"code\":%d,\"msg\":", code);
    put_json_string(msg);
    if (details && *details) {
        printf(",\"details\":");
        put_json_string(details);
    }
    printf("}\n");
    return 1;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* --- the exchange with the daemon, all of it before one deadline (milliseconds on CLOCK_MONOTONIC) --- */

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* 1 when fd is ready for events, 0 when the deadline passed first, -1 on an error (errno). */
static int wait_for(int fd, short events, long long deadline) {
    for (;;) {
        long long left = deadline - now_ms();
        if (left <= 0) return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (r > 0) return 1;
        if (r < 0 && errno != EINTR) return -1;
    }
}

/* 0 when all of it went, else an errno (ETIMEDOUT: the deadline; EPIPE: the daemon closed). */
static int send_all(int fd, const char *p, size_t n, long long deadline) {
    while (n > 0) {
        int ready = wait_for(fd, POLLOUT, deadline);
        if (ready <= 0) return ready == 0 ? ETIMEDOUT : errno;
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* What the reply's head says. */
struct head {
    size_t length;     /* Content-Length */
    size_t exit_code;  /* X-CNI-Exit */
};

/* value is decimal digits only, at most max. */
static int parse_decimal(const char *value, size_t n, size_t max, size_t *out) {
    if (n == 0 || n > 9) return 0;
    size_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (value[i] < '0' || value[i] > '9') return 0;
        v = v * 10 + (size_t)(value[i] - '0');
    }
    if (v > max) return 0;
    *out = v;
    return 1;
}

static int is_header(const char *name, size_t n, const char *want) { return n == strlen(want) && strncasecmp(name, want, n) == 0; }

/* One header line: Content-Length, X-CNI-Exit, Transfer-Encoding matter. NULL, or what is wrong with it. */
static const char *parse_header(const char *line, size_t n, struct head *h, int *seen_length, int *seen_exit) {
    const char *colon = memchr(line, ':', n);
    if (!colon || colon == line) return "a header line without a name";
    size_t name_len = (size_t)(colon - line);
    for (size_t i = 0; i < name_len; i++)
        if ((unsigned char)line[i] <= ' ' || line[i] == 0x7f) return "a header name with a blank or control character";
    const char *value = colon + 1, *end = line + n;
    for (const char *p = value; p < end; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) return "a header value with a control character";
    while (value < end && (*value == ' ' || *value == '\t')) value++;
    while (end > value && (end[-1] == ' ' || end[-1] == '\t')) end--;
    size_t len = (size_t)(end - value);
    if (is_header(line, name_len, "transfer-encoding")) return "a Transfer-Encoding (chunked) reply";
    if (is_header(line, name_len, "content-length")) {
        if ((*seen_length)++) return "two Content-Length headers";
        if (!parse_decimal(value, len, MAX_BODY, &h->length)) return "a Content-Length that is not a number up to 4 MiB";
    }
    if (is_header(line, name_len, "x-cni-exit")) {
        if ((*seen_exit)++) return "two X-CNI-Exit headers";
        if (!parse_decimal(value, len, 255, &h->exit_code)) return "an X-CNI-Exit that is not a number from 0 to 255";
    }
    return NULL;
}

/* The reply's head (without its closing blank line) is a 200 with what this client needs: 1, else 0 and why. */
static int parse_head(const char *head, size_t len, struct head *h, char *why, size_t why_size) {
    const char *end = head + len;
    const char *eol = memmem(head, len, "\r\n", 2);
    if (!eol) eol = end;
    size_t n = (size_t)(eol - head);
    /* the status line: HTTP/1.0 or 1.1, 200, an optional reason */
    if (n < 12 || (memcmp(head, "HTTP/1.1 200", 12) != 0 && memcmp(head, "HTTP/1.0 200", 12) != 0) || (n > 12 && head[12] != ' ')) {
        snprintf(why, why_size, "the status line is '%.*s'", (int)(n < 100 ? n : 100), head);
        return 0;
    }
    int seen_length = 0, seen_exit = 0;
    const char *problem = NULL;
    while (!problem && eol < end) {
        const char *line = eol + 2;
        eol = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (!eol) eol = end;
        problem = parse_header(line, (size_t)(eol - line), h, &seen_length, &seen_exit);
    }
    if (!problem && !seen_length) problem = "no Content-Length header";
    if (!problem && !seen_exit) problem = "no X-CNI-Exit header";
    if (problem) snprintf(why, why_size, "%s", problem);
    return problem == NULL;
}

/* Some bytes of the reply, before the deadline: their number, 0 at the end (or a reset), -1 on an error (errno). */
static ssize_t receive_some(int fd, char *chunk, size_t size, long long deadline) {
    for (;;) {
        int ready = wait_for(fd, POLLIN, deadline);
        if (ready == 0) errno = ETIMEDOUT;
        if (ready <= 0) return -1;
        ssize_t r = recv(fd, chunk, size, MSG_DONTWAIT);
        if (r >= 0) return r;
        if (errno == ECONNRESET) return 0;
        if (errno != EINTR && errno != EAGAIN) return -1;
    }
}

/*
 * The reply: its head, then Content-Length bytes of body, read before the deadline; nothing after
 * those is waited for. NULL with the body's offset in reply, or the problem (msg, details in why).
 */
static const char *receive_reply(int fd, struct buf *reply, long long deadline, struct head *h, size_t *body_at, char *why, size_t why_size) {
    char chunk[65536];
    int have_head = 0;
    *why = '\0';
    while (!have_head || reply->len < *body_at + h->length) {
        ssize_t r = receive_some(fd, chunk, sizeof chunk, deadline);
        if (r < 0 && errno == ETIMEDOUT) {
            snprintf(why, why_size, "no complete reply within %d ms", TSNET_CNI_TIMEOUT_MS);
            return "the tsnet daemon did not answer in time";
        }
        if (r < 0) {
            snprintf(why, why_size, "%s", strerror(errno));
            return "cannot read the tsnet daemon's reply";
        }
        if (r == 0) {
            snprintf(why, why_size, "%zu bytes of the reply arrived", reply->len);
            return "the tsnet daemon closed the connection before its reply was complete";
        }
        size_t before = reply->len;
        if (buf_add(reply, chunk, (size_t)r) < 0) return "out of memory";
        if (have_head) continue;
        /* the head ends at the first blank line: look again from just before the new bytes */
        size_t from = before > 3 ? before - 3 : 0;
        const char *end_of_head = memmem(reply->data + from, reply->len - from, "\r\n\r\n", 4);
        size_t head_len = end_of_head ? (size_t)(end_of_head - reply->data) : reply->len;
        if (head_len > MAX_HEAD) {
            snprintf(why, why_size, "its head is larger than %d bytes", MAX_HEAD);
            return REPLY_UNEXPECTED;
        }
        if (!end_of_head) continue;
        have_head = 1;
        *body_at = head_len + 4;
        if (!parse_head(reply->data, head_len, h, why, why_size)) return REPLY_UNEXPECTED;
    }
    return NULL;
}

/* The reply's body, a JSON object or (for a success) nothing, printed as it came: the exit code. */
static int print_body(const struct config *cfg, const char *body, const struct head *h) {
    struct scan blank = {body, body + h->length};
    skip_ws(&blank);
    int empty = blank.p == blank.end;
    if (empty && h->exit_code != 0) return fail(cfg, ERR_IO, REPLY_UNEXPECTED, "an empty body with a non-zero X-CNI-Exit");
    if (!empty && !scan_document(body, h->length, NULL)) return fail(cfg, ERR_IO, REPLY_UNEXPECTED, "its body is not a JSON object");
    if (write_all(1, body, h->length) < 0) return ERR_IO;
    return (int)h->exit_code;
}

/* --- the plugin --- */

/* What the plugin allocates, freed at the end (so that a leak checker sees nothing). */
struct client {
    struct buf in, request, reply;
    struct config config;
};

/* stdin, the network configuration (may be empty for VERSION): 0, or the exit code of the error printed. */
static int read_input(struct client *c) {
    char chunk[65536];
    for (;;) {
        ssize_t r = read(0, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return fail(&c->config, ERR_IO, "cannot read the network configuration from stdin", strerror(errno));
        if (r == 0) break;
        if (c->in.len + (size_t)r > MAX_CONFIG) return fail(&c->config, ERR_IO, "the network configuration on stdin is larger than 1 MiB", "");
        if (buf_add(&c->in, chunk, (size_t)r) < 0) return fail(&c->config, ERR_IO, "out of memory", "");
    }
    if (!c->in.data && buf_str(&c->in, "") < 0) return fail(&c->config, ERR_IO, "out of memory", "");
    return 0;
}

/* Where the daemon is: the configuration's "socket", else $TSNET_SOCKET, else the default. 0, or the exit code of the error printed. */
static int choose_socket(const struct config *cfg, const char **path) {
    char msg[256];
    const char *env = getenv("TSNET_SOCKET"), *problem;
    if (cfg->socket.found) {
        const struct text *s = &cfg->socket.value;
        problem = cfg->socket.is_string ? bad_socket_path(s->data, s->len) : "is not a string";
        *path = s->data;
        if (!problem) return 0;
        snprintf(msg, sizeof msg, "the configuration's \"socket\" (the tsnet daemon's unix socket) %s", problem);
        return fail(cfg, ERR_INVALID_CONFIG, msg, "");
    }
    if (env && *env) {
        problem = bad_socket_path(env, strlen(env));
        *path = env;
        if (!problem) return 0;
        snprintf(msg, sizeof msg, "TSNET_SOCKET (the tsnet daemon's unix socket) %s", problem);
        return fail(cfg, ERR_INVALID_ENV, msg, "");
    }
    *path = DEFAULT_SOCKET;
    return 0;
}

/* The HTTP request: POST /Cni.Exec, each CNI_* variable set as X-CNI-*, the configuration as the body. 0, or the exit code of the error printed. */
static int build_request(struct client *c) {
    char line[256];
    snprintf(line, sizeof line, "POST /Cni.Exec HTTP/1.1\r\nHost: tsnet\r\nConnection: close\r\nContent-Type: application/x-cni-config\r\nContent-Length: %zu\r\n", c->in.len);
    int ok = buf_str(&c->request, line) == 0;
    for (size_t i = 0; i < sizeof VARS / sizeof VARS[0]; i++) {
        const char *v = getenv(VARS[i]);
        if (!v) continue;
        const char *problem = strlen(v) > MAX_VAR ? "is longer than 4096 bytes" : NULL;
        for (const char *p = v; !problem && *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) problem = "holds a control character (a line break?)";
        if (problem) {
            snprintf(line, sizeof line, "%s %s", VARS[i], problem);
            return fail(&c->config, ERR_INVALID_ENV, line, "");
        }
        /* CNI_CONTAINERID -> X-CNI-CONTAINERID: header names are case-insensitive */
        ok = ok && buf_str(&c->request, "X-CNI-") == 0 && buf_str(&c->request, VARS[i] + 4) == 0 && buf_str(&c->request, ": ") == 0 &&
             buf_str(&c->request, v) == 0 && buf_str(&c->request, "\r\n") == 0;
    }
    ok = ok && buf_str(&c->request, "\r\n") == 0 && buf_add(&c->request, c->in.data, c->in.len) == 0;
    return ok ? 0 : fail(&c->config, ERR_IO, "out of memory", "");
}

/* Sends the request to the daemon at path and prints its reply: the exit code. */
static int exchange(struct client *c, const char *path) {
    const struct config *cfg = &c->config;
    char why[512];
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t path_len = strlen(path); /* checked by choose_socket */
    memcpy(addr.sun_path, path, path_len < sizeof addr.sun_path ? path_len : sizeof addr.sun_path - 1);
    long long deadline = now_ms() + TSNET_CNI_TIMEOUT_MS;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(cfg, ERR_IO, "cannot create a unix socket", strerror(errno));
    /* connect waits for a full backlog at most the time the whole exchange has */
    struct timeval tv = {.tv_sec = TSNET_CNI_TIMEOUT_MS / 1000, .tv_usec = TSNET_CNI_TIMEOUT_MS % 1000 * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int e = errno;
        close(fd);
        snprintf(why, sizeof why,
                 "the tsnet daemon is not running (nothing answers on %s): start it with `make up` in the tsnet checkout or `tsnet serve`, then try again",
                 path);
        return fail(cfg, ERR_TRY_LATER, why, strerror(e));
    }
    int sent = send_all(fd, c->request.data, c->request.len, deadline);
    /* a daemon that refuses a request may answer and close before it read all of it: that answer counts */
    if (sent != 0 && sent != EPIPE && sent != ECONNRESET) {
        close(fd);
        return fail(cfg, ERR_IO, sent == ETIMEDOUT ? "the tsnet daemon did not take the request in time" : "cannot send the request to the tsnet daemon", strerror(sent));
    }
    struct head h = {0};
    size_t body_at = 0;
    const char *problem = receive_reply(fd, &c->reply, deadline, &h, &body_at, why, sizeof why);
    close(fd);
    if (problem && sent) return fail(cfg, ERR_IO, "the tsnet daemon closed the connection before it took the whole request", strerror(sent));
    if (problem) return fail(cfg, ERR_IO, problem, why);
    return print_body(cfg, c->reply.data + body_at, &h);
}

static int run(struct client *c) {
    int rc = read_input(c);
    if (rc) return rc;
    scan_document(c->in.data, c->in.len, &c->config);
    const char *command = getenv("CNI_COMMAND");
    if (!command || !*command) return fail(&c->config, ERR_INVALID_ENV, "CNI_COMMAND is not set: tsnet is a CNI plugin, run by a container runtime", "");
    if (strcmp(command, "VERSION") == 0) {
        fputs(VERSION_REPLY, stdout);
        return 0;
    }
    if (!c->config.is_object) return fail(&c->config, ERR_DECODE, "the network configuration on stdin is not a JSON object", "");
    const char *path;
    if ((rc = choose_socket(&c->config, &path)) != 0 || (rc = build_request(c)) != 0) return rc;
    return exchange(c, path);
}

int main(void) {
    /* a daemon that closes early is an error to report, not a signal to die of with nothing printed */
    signal(SIGPIPE, SIG_IGN);
    struct client c = {0};
    int rc = run(&c);
    free(c.in.data);
    free(c.request.data);
    free(c.reply.data);
    return rc;
}
