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
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/docker/plugins/tsnet.sock"
#define VERSION_REPLY "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
#define MAX_INPUT (1 << 20)
#define MAX_REPLY (4 << 20)
#define TIMEOUT_SECONDS 120

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

/* The configuration's cniVersion, for an error printed here; "1.1.0" when there is none. */
static void version_of(const char *config, char *out, size_t size) {
    snprintf(out, size, "1.1.0");
    const char *k = config ? strstr(config, "\"cniVersion\"") : NULL;
    if (!k) return;
    const char *q = strchr(k + 12, '"');
    if (!q) return;
    size_t i = 0;
    for (q++; *q && *q != '"' && i + 1 < size; q++) {
        if (!strchr("0123456789.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-+", *q)) return;
        out[i++] = *q;
    }
    if (*q == '"') out[i] = '\0';
    else snprintf(out, size, "1.1.0");
}

/*
 * The daemon's socket named in the configuration ("socket": "/path"), so that every process a
 * runtime runs the plugin from finds it (podman's clean-up after a container exits runs without the
 * runtime's environment). A plain string without escapes; 0 when there is none.
 */
static int socket_of(const char *config, char *out, size_t size) {
    const char *k = config ? strstr(config, "\"socket\"") : NULL;
    if (!k) return 0;
    const char *p = k + 8;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p++ != ':') return 0;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p++ != '"') return 0;
    size_t i = 0;
    for (; *p && *p != '"' && *p != '\\'; p++) {
        if (i + 1 >= size) return 0;
        out[i++] = *p;
    }
    if (*p != '"' || i == 0) return 0;
    out[i] = '\0';
    return 1;
}

/* A CNI error object on stdout; msg and details must not need JSON escaping beyond quotes. */
static int fail(const char *config, int code, const char *msg, const char *details) {
    char version[32];
    version_of(config, version, sizeof version);
    printf("{\"cniVersion\":\"%s\",\"code\":%d,\"msg\":\"", version, code);
    for (const char *p = msg; *p; p++) {
        if (*p == '"' || *p == '\\') putchar('\\');
        putchar(*p);
    }
    printf("\"");
    if (details && *details) printf(",\"details\":\"%s\"", details);
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

int main(void) {
    struct buf in = {0}, req = {0}, reply = {0};
    char chunk[65536];

    /* stdin: the network configuration (may be empty for VERSION) */
    for (;;) {
        ssize_t r = read(0, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return fail(NULL, 5, "cannot read the network configuration from stdin", strerror(errno));
        if (r == 0) break;
        if (in.len + (size_t)r > MAX_INPUT) return fail(NULL, 5, "the network configuration on stdin is larger than 1 MiB", "");
        if (buf_add(&in, chunk, (size_t)r) < 0) return fail(NULL, 5, "out of memory", "");
    }
    if (!in.data && buf_str(&in, "") < 0) return fail(NULL, 5, "out of memory", "");

    const char *command = getenv("CNI_COMMAND");
    if (!command || !*command) return fail(in.data, 4, "CNI_COMMAND is not set: tsnet is a CNI plugin, run by a container runtime", "");
    if (strcmp(command, "VERSION") == 0) {
        fputs(VERSION_REPLY, stdout);
        return 0;
    }

    /* where the daemon is: the configuration's "socket", else $TSNET_SOCKET, else the default */
    char configured[sizeof(((struct sockaddr_un *)0)->sun_path)];
    const char *path = socket_of(in.data, configured, sizeof configured) ? configured : getenv("TSNET_SOCKET");
    if (!path || !*path) path = DEFAULT_SOCKET;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) return fail(in.data, 4, "TSNET_SOCKET is too long for a unix socket path", "");
    strcpy(addr.sun_path, path);

    /* the request */
    char line[8192];
    snprintf(line, sizeof line, "POST /Cni.Exec HTTP/1.1\r\nHost: tsnet\r\nConnection: close\r\nContent-Type: application/x-cni-config\r\nContent-Length: %zu\r\n", in.len);
    if (buf_str(&req, line) < 0) return fail(in.data, 5, "out of memory", "");
    for (size_t i = 0; i < sizeof VARS / sizeof VARS[0]; i++) {
        const char *v = getenv(VARS[i]);
        if (!v) continue;
        if (strpbrk(v, "\r\n")) {
            snprintf(line, sizeof line, "%s holds a line break", VARS[i]);
            return fail(in.data, 4, line, "");
        }
        if (strlen(v) > sizeof line - 64) {
            snprintf(line, sizeof line, "%s is too long", VARS[i]);
            return fail(in.data, 4, line, "");
        }
        /* CNI_CONTAINERID -> X-CNI-CONTAINERID: header names are case-insensitive */
        char name[64];
        snprintf(name, sizeof name, "%s", VARS[i]);
        name[3] = '-';
        snprintf(line, sizeof line, "X-%s: %s\r\n", name, v);
        if (buf_str(&req, line) < 0) return fail(in.data, 5, "out of memory", "");
    }
    if (buf_str(&req, "\r\n") < 0 || buf_add(&req, in.data, in.len) < 0) return fail(in.data, 5, "out of memory", "");

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(in.data, 5, "cannot create a unix socket", strerror(errno));
    struct timeval tv = {.tv_sec = TIMEOUT_SECONDS};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        snprintf(line, sizeof line,
                 "the tsnet daemon is not running (nothing answers on %s): start it with `make up` in the tsnet checkout or `tsnet serve`, then try again",
                 path);
        return fail(in.data, 11, line, strerror(errno));
    }
    if (write_all(fd, req.data, req.len) < 0) return fail(in.data, 5, "cannot send the request to the tsnet daemon", strerror(errno));

    /* the reply: read to the end (Connection: close) */
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return fail(in.data, 5, "no reply from the tsnet daemon", strerror(errno));
        if (r == 0) break;
        if (reply.len + (size_t)r > MAX_REPLY) return fail(in.data, 5, "the tsnet daemon's reply is too large", "");
        if (buf_add(&reply, chunk, (size_t)r) < 0) return fail(in.data, 5, "out of memory", "");
    }
    close(fd);
    if (!reply.data) return fail(in.data, 5, "the tsnet daemon closed the connection without a reply", "");
    char *body = strstr(reply.data, "\r\n\r\n");
    if (strncmp(reply.data, "HTTP/1.1 200", 12) != 0 || !body) {
        return fail(in.data, 5, "the tsnet daemon's reply is not what this plugin expects: are the plugin and the daemon from the same tsnet?", "");
    }
    *body = '\0';
    body += 4;
    int exit_code = 1;
    for (char *h = strstr(reply.data, "\r\n"); h; h = strstr(h + 2, "\r\n")) {
        if (strncasecmp(h + 2, "x-cni-exit:", 11) == 0) {
            exit_code = atoi(h + 13);
            break;
        }
    }
    if (write_all(1, body, reply.len - (size_t)(body - reply.data)) < 0) return 5;
    return exit_code;
}
