/*
 * Tests of the C ABI against a running sandbox. Compiled as C11 and as C++17,
 * linked statically and dynamically, run plainly and under valgrind by
 * tests/c/run.sh.
 *
 * Environment:
 *   FIELDREPORT_SANDBOX_URL  the sandbox's API base URL (http://127.0.0.1:N/api/v1)
 *   FIELDREPORT_ABC_SANDBOX_URL  an ABC User Feedback sandbox's root
 *                            (http://127.0.0.1:N; `fieldreport sandbox --kind abc`)
 *   FIELDREPORT_TEST_DIR     an empty directory for outboxes and files
 *
 * Prints one line per failed check, then "test_ffi: N passed, N failed";
 * exits 1 when a check failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fieldreport.h"

#define SANDBOX_KEY "sandbox-key"
#define WRONG_KEY "wrong-secret-key-4711"
#define BAD_UTF8 "caf\xc3\x28 \xff"

/* ------------------------------------------------------------------------ */
/* Checks                                                                   */
/* ------------------------------------------------------------------------ */

static int g_passed;
static int g_failed;

static const char *last_error(void) {
    static char buf[2048];
    fieldreport_last_error(buf, sizeof buf);
    return buf;
}

static void check(int ok, int line, const char *what) {
    if (ok) {
        g_passed++;
    } else {
        g_failed++;
        fprintf(stderr, "FAIL (line %d): %s\n    last error: %s\n", line, what, last_error());
    }
}

static void check_status(int got, int want, int line, const char *what) {
    if (got == want) {
        g_passed++;
    } else {
        g_failed++;
        fprintf(stderr, "FAIL (line %d): %s\n    returned %s, expected %s\n    last error: %s\n",
                line, what, fieldreport_status_name(got), fieldreport_status_name(want),
                last_error());
    }
}

#define CHECK(cond) check((cond) ? 1 : 0, __LINE__, #cond)
#define CHECK_STATUS(call, want) check_status((int)(call), (int)(want), __LINE__, #call)
#define CHECK_OK(call) CHECK_STATUS(call, FIELDREPORT_STATUS_OK)

/* ------------------------------------------------------------------------ */
/* Helpers: files, the sandbox's control endpoints                          */
/* ------------------------------------------------------------------------ */

static const char *g_url;
static const char *g_dir;
static int g_port;
static const char *g_abc_url;
static int g_abc_port;

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = (char *)malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fwrite(data, 1, len, f);
    fclose(f);
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    }
    closedir(d);
    return n;
}

static void sleep_ms(long ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

/* One HTTP/1.0 request to the sandbox on `port`; returns the malloc'd body
 * or NULL. */
static char *http_to(int port, const char *method, const char *path, const char *body) {
    struct sockaddr_in addr;
    char head[512];
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char *start;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return NULL;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return NULL;
    }
    snprintf(head, sizeof head,
             "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
             method, path, body ? strlen(body) : (size_t)0);
    if (write(fd, head, strlen(head)) < 0 || (body && write(fd, body, strlen(body)) < 0)) {
        close(fd);
        return NULL;
    }
    for (;;) {
        ssize_t n;
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = (char *)realloc(buf, cap);
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    if (!buf) return NULL;
    buf[len] = '\0';
    start = strstr(buf, "\r\n\r\n");
    if (!start) {
        free(buf);
        return NULL;
    }
    memmove(buf, start + 4, strlen(start + 4) + 1);
    return buf;
}

/* One HTTP/1.0 request to the Centercode sandbox. */
static char *http(const char *method, const char *path, const char *body) {
    return http_to(g_port, method, path, body);
}

static int sandbox_has(const char *needle) {
    char *state = http("GET", "/_sandbox/state", NULL);
    int found = state && strstr(state, needle) != NULL;
    free(state);
    return found;
}

/* The 64 hex digits after "sha256":" in a JSON text, or "" */
static void sha256_of(const char *json, char out[65]) {
    const char *p = json ? strstr(json, "\"sha256\":\"") : NULL;
    out[0] = '\0';
    if (p) {
        memcpy(out, p + 10, 64);
        out[64] = '\0';
    }
}

/* ------------------------------------------------------------------------ */
/* The event recorder                                                       */
/* ------------------------------------------------------------------------ */

typedef struct {
    pthread_mutex_t mu;
    pthread_t main_thread;
    int calls;
    int delivered;
    int dead;
    int paused;
    int failed;
    int rejected;
    int on_other_thread;
    int json_ok;
    int receipt_ok;
    int secret_seen;
    int last_http_status;
    int64_t last_delivered_id;
    int progress;
    int progress_at_total;
    uint64_t progress_last_sent;
    uint64_t progress_total;
    int progress_named;
} recorder;

static void on_event(void *user_data, const fieldreport_event *ev) {
    recorder *r = (recorder *)user_data;
    pthread_mutex_lock(&r->mu);
    r->calls++;
    if (!pthread_equal(pthread_self(), r->main_thread)) r->on_other_thread++;
    if (ev->json && strstr(ev->json, "\"kind\":")) r->json_ok++;
    if ((ev->message && strstr(ev->message, WRONG_KEY)) || (ev->json && strstr(ev->json, WRONG_KEY)))
        r->secret_seen++;
    switch ((int)ev->kind) {
    case FIELDREPORT_EVENT_KIND_DELIVERED:
        r->delivered++;
        r->last_delivered_id = ev->report_id;
        if (ev->receipt && ev->receipt->id == ev->report_id && ev->receipt->server_key &&
            strncmp(ev->receipt->server_key, "BUG-", 4) == 0 &&
            (int)ev->receipt->state == FIELDREPORT_REPORT_STATE_DELIVERED)
            r->receipt_ok++;
        break;
    case FIELDREPORT_EVENT_KIND_DEAD:
        r->dead++;
        r->last_http_status = ev->http_status;
        break;
    case FIELDREPORT_EVENT_KIND_PAUSED:
        r->paused++;
        r->last_http_status = ev->http_status;
        break;
    case FIELDREPORT_EVENT_KIND_FAILED:
        r->failed++;
        break;
    case FIELDREPORT_EVENT_KIND_ATTACHMENT_REJECTED:
        r->rejected++;
        break;
    case FIELDREPORT_EVENT_KIND_PROGRESS:
        r->progress++;
        r->progress_last_sent = ev->sent_bytes;
        r->progress_total = ev->total_bytes;
        if (ev->sent_bytes == ev->total_bytes) r->progress_at_total++;
        if (ev->file_name && strcmp(ev->file_name, "big.bin") == 0 && ev->json &&
            strstr(ev->json, "\"kind\":\"progress\""))
            r->progress_named++;
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&r->mu);
}

static int recorded(recorder *r, int *field) {
    int v;
    pthread_mutex_lock(&r->mu);
    v = *field;
    pthread_mutex_unlock(&r->mu);
    return v;
}

/* ------------------------------------------------------------------------ */
/* Opening clients                                                          */
/* ------------------------------------------------------------------------ */

static fieldreport_config *make_config(const char *outbox) {
    fieldreport_config *cfg = NULL;
    CHECK_OK(fieldreport_config_new(outbox, "WidgetPro", "Mobile", SANDBOX_KEY, &cfg));
    CHECK_OK(fieldreport_config_set_base_url(cfg, g_url));
    CHECK_OK(fieldreport_config_set_app(cfg, "FFI Test", "1.0", NULL));
    /* Faster tests: no fsync. */
    CHECK_OK(fieldreport_config_set_policy(cfg, FIELDREPORT_POLICY_DURABILITY, 1));
    return cfg;
}

static fieldreport_client *open_client(const char *name) {
    char *outbox = join(g_dir, name);
    fieldreport_config *cfg = make_config(outbox);
    fieldreport_client *client = NULL;
    CHECK_OK(fieldreport_client_open(cfg, &client));
    CHECK(client != NULL);
    fieldreport_config_free(cfg);
    free(outbox);
    return client;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */
/* ------------------------------------------------------------------------ */

static void test_library_functions(void) {
    char small[8];
    size_t n;
    fieldreport_feedback *fb = NULL;

    CHECK(fieldreport_version() != NULL && strlen(fieldreport_version()) > 0);
    CHECK(strcmp(fieldreport_status_name(FIELDREPORT_STATUS_NOT_FOUND),
                 "FIELDREPORT_STATUS_NOT_FOUND") == 0);
    CHECK(strcmp(fieldreport_status_name(12345), "FIELDREPORT_STATUS_UNKNOWN") == 0);
    CHECK(FIELDREPORT_STATUS_OK == 0 && FIELDREPORT_STATUS_NULL_ARGUMENT == 100 &&
          FIELDREPORT_STATUS_PANIC == 102);

    /* A failure leaves a message; snprintf-style copy and length. */
    CHECK_STATUS(fieldreport_feedback_new(NULL, &fb), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK(fb == NULL);
    n = fieldreport_last_error(NULL, 0);
    CHECK(n == strlen("summary is NULL"));
    CHECK(fieldreport_last_error(small, sizeof small) == n);
    CHECK(strcmp(small, "summary") == 0);
    CHECK(strcmp(last_error(), "summary is NULL") == 0);

    /* A success clears it. */
    CHECK_OK(fieldreport_feedback_new("ok", &fb));
    CHECK(fieldreport_last_error(small, sizeof small) == 0 && small[0] == '\0');
    fieldreport_feedback_free(fb);

    /* Freeing NULL is a no-op everywhere. */
    fieldreport_string_free(NULL);
    fieldreport_config_free(NULL);
    fieldreport_feedback_free(NULL);
    fieldreport_crash_free(NULL);
    fieldreport_flush_result_free(NULL);
    fieldreport_client_free(NULL);
    CHECK(fieldreport_flush_result_receipt_count(NULL) == 0);
    CHECK(fieldreport_flush_result_receipt(NULL, 0) == NULL);
    CHECK(fieldreport_flush_result_stopped(NULL) == NULL);
    CHECK(fieldreport_flush_result_json(NULL) == NULL);
}

static void test_config(void) {
    fieldreport_config *cfg = NULL;
    fieldreport_client *client = (fieldreport_client *)&cfg; /* garbage, must be reset */
    char *outbox = join(g_dir, "config");
    const char *secret = "SECRETKEY-0123456789";
    char url[256];

    /* NULL for every pointer argument of fieldreport_config_new. */
    CHECK_STATUS(fieldreport_config_new(NULL, "P", "T", "k", &cfg), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_config_new(outbox, NULL, "T", "k", &cfg), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_config_new(outbox, "P", NULL, "k", &cfg), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_config_new(outbox, "P", "T", NULL, &cfg), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_config_new(outbox, "P", "T", "k", NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK(cfg == NULL);
    CHECK_STATUS(fieldreport_config_new(outbox, BAD_UTF8, "T", "k", &cfg), FIELDREPORT_STATUS_INVALID_UTF8);
    CHECK_STATUS(fieldreport_config_new(outbox, "P", "T", BAD_UTF8, &cfg), FIELDREPORT_STATUS_INVALID_UTF8);
    CHECK(cfg == NULL);

    /* Setters on NULL. */
    CHECK_STATUS(fieldreport_config_set_company(NULL, "acme"), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_config_set_base_url(NULL, g_url), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_config_set_policy(NULL, FIELDREPORT_POLICY_MAX_REPORTS, 5),
                 FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_client_open(NULL, &client), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK(client == NULL);

    CHECK_OK(fieldreport_config_new(outbox, "WidgetPro", "Mobile", secret, &cfg));
    CHECK_STATUS(fieldreport_config_set_company(cfg, NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_config_set_base_url(cfg, BAD_UTF8), FIELDREPORT_STATUS_INVALID_UTF8);
    CHECK_STATUS(fieldreport_client_open(cfg, NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);

    /* Neither company nor base URL. */
    CHECK_STATUS(fieldreport_client_open(cfg, &client), FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK(client == NULL);

    /* Policy knobs: unknown, out of range, invalid durability. */
    CHECK_STATUS(fieldreport_config_set_policy(cfg, 999, 1), FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK_STATUS(fieldreport_config_set_policy(cfg, FIELDREPORT_POLICY_MAX_REPORTS, 1ULL << 40),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK_STATUS(fieldreport_config_set_policy(cfg, FIELDREPORT_POLICY_DURABILITY, 7),
                 FIELDREPORT_STATUS_INVALID_CONFIG);

    /* http:// to a non-loopback host is refused... */
    CHECK_OK(fieldreport_config_set_base_url(cfg, "http://example.com/api/v1"));
    CHECK_STATUS(fieldreport_client_open(cfg, &client), FIELDREPORT_STATUS_INVALID_CONFIG);

    /* ...and the API key never shows in a message, even when the caller put
     * it where a message quotes it. */
    snprintf(url, sizeof url, "https://example.com/api/v1?apiKey=%s", secret);
    CHECK_OK(fieldreport_config_set_base_url(cfg, url));
    CHECK_STATUS(fieldreport_client_open(cfg, &client), FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK(strlen(last_error()) > 0);
    CHECK(strstr(last_error(), secret) == NULL);
    CHECK(strstr(last_error(), "<redacted>") != NULL);

    /* A policy combination checked at open. */
    CHECK_OK(fieldreport_config_set_base_url(cfg, g_url));
    CHECK_OK(fieldreport_config_set_policy(cfg, FIELDREPORT_POLICY_RETRY_BASE_MS, 0));
    CHECK_STATUS(fieldreport_client_open(cfg, &client), FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK_OK(fieldreport_config_set_policy(cfg, FIELDREPORT_POLICY_RETRY_BASE_MS, 2000));

    /* Unknown context item, checked at open. */
    CHECK_OK(fieldreport_config_set_context_field(cfg, "shoe_size", "Shoe"));
    CHECK_STATUS(fieldreport_client_open(cfg, &client), FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK_OK(fieldreport_config_set_context_field(cfg, "shoe_size", NULL));

    /* Now it opens. */
    CHECK_OK(fieldreport_client_open(cfg, &client));
    CHECK(client != NULL);
    fieldreport_client_free(client);
    fieldreport_config_free(cfg);
    free(outbox);
}

static const unsigned char PNG[] = {
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44,
    0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F,
    0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8,
    0xCF, 0xC0, 0xF0, 0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
};

static void test_happy_path(fieldreport_client *c, recorder *rec) {
    char *shot = join(g_dir, "screen.png");
    char summary[128];
    char sha[65];
    fieldreport_feedback *fb = NULL;
    fieldreport_crash *crash = NULL;
    fieldreport_flush_result *result = NULL;
    fieldreport_report_state state;
    fieldreport_stats stats;
    int64_t id = 0, crash_id = 0;
    char *json = NULL;
    size_t i;
    int delivered = 0;

    write_file(shot, PNG, sizeof PNG);
    snprintf(summary, sizeof summary, "Lighting presets should be more robust (pid %ld)",
             (long)getpid());

    CHECK_OK(fieldreport_client_set_callback(c, on_event, rec));

    CHECK_OK(fieldreport_feedback_new(summary, &fb));
    CHECK_OK(fieldreport_feedback_set_description(fb, "I wish the app had more presets.\nTwo lines."));
    CHECK_OK(fieldreport_feedback_set_submitter(fb, "jim@example.com"));
    CHECK_OK(fieldreport_feedback_set_field_int(fb, "topic", 23795));
    CHECK_OK(fieldreport_feedback_set_field_string(fb, "platform", "Linux"));
    CHECK_OK(fieldreport_feedback_set_field_json(fb, "tags", "[\"ui\",\"lighting\"]"));
    CHECK_OK(fieldreport_feedback_attach_file(fb, "Screenshot", shot, NULL, NULL));
    CHECK_OK(fieldreport_feedback_attach_bytes(fb, "Log", "notes.txt",
                                               (const uint8_t *)"hello log\n", 10, NULL));
    CHECK_OK(fieldreport_client_submit(c, fb, &id));
    CHECK(id > 0);
    fieldreport_feedback_free(fb);
    /* The attachment was copied: the app may delete its file now. */
    CHECK(remove(shot) == 0);

    CHECK_OK(fieldreport_client_report_state(c, id, &state));
    CHECK((int)state == FIELDREPORT_REPORT_STATE_QUEUED);
    CHECK_OK(fieldreport_client_stats(c, &stats));
    CHECK(stats.pending == 1 && stats.consent && !stats.paused_for_auth);
    CHECK(stats.oldest_pending_age_secs >= 0);

    CHECK_OK(fieldreport_crash_new_text(
        "thread 'main' panicked at src/render.rs:42:7:\nindex out of bounds\nstack backtrace: ...",
        &crash));
    CHECK_OK(fieldreport_crash_set_field_string(crash, "platform", "Linux"));
    CHECK_OK(fieldreport_client_submit_crash(c, crash, &crash_id));
    CHECK(crash_id > id);
    fieldreport_crash_free(crash);

    CHECK_OK(fieldreport_client_flush(c, 60000, &result));
    CHECK(result != NULL);
    CHECK(fieldreport_flush_result_receipt_count(result) == 2);
    CHECK(fieldreport_flush_result_pending(result) == 0);
    CHECK(fieldreport_flush_result_dead(result) == 0);
    CHECK(fieldreport_flush_result_stopped(result) == NULL);
    CHECK(fieldreport_flush_result_receipt(result, 2) == NULL);
    for (i = 0; i < fieldreport_flush_result_receipt_count(result); i++) {
        const fieldreport_receipt *r = fieldreport_flush_result_receipt(result, i);
        if (r && (int)r->state == FIELDREPORT_REPORT_STATE_DELIVERED && r->server_key &&
            strncmp(r->server_key, "BUG-", 4) == 0 && r->server_url && r->error == NULL &&
            r->rejected_count == 0 && r->http_status == 0)
            delivered++;
    }
    CHECK(delivered == 2);
    CHECK(strstr(fieldreport_flush_result_json(result), "\"state\":\"delivered\"") != NULL);
    fieldreport_flush_result_free(result);

    CHECK_OK(fieldreport_client_report_state(c, id, &state));
    CHECK((int)state == FIELDREPORT_REPORT_STATE_DELIVERED);
    CHECK_OK(fieldreport_client_report_state(c, crash_id, &state));
    CHECK((int)state == FIELDREPORT_REPORT_STATE_DELIVERED);

    CHECK_OK(fieldreport_client_report_json(c, id, &json));
    CHECK(json && strstr(json, "\"state\":\"delivered\"") && strstr(json, "\"uploaded\"") &&
          strstr(json, "\"file_name\":\"screen.png\""));
    sha256_of(json, sha);
    CHECK(strlen(sha) == 64);
    fieldreport_string_free(json);

    /* What the server received: the summary, the screenshot's exact bytes. */
    CHECK(sandbox_has(summary));
    CHECK(sandbox_has("\"topic\":23795"));
    CHECK(strlen(sha) == 64 && sandbox_has(sha));
    CHECK(sandbox_has("crash.log.gz"));

    CHECK_OK(fieldreport_client_stats(c, &stats));
    CHECK(stats.pending == 0 && stats.delivered >= 2 && stats.dead == 0);
    CHECK(stats.oldest_pending_age_secs == -1);
    CHECK_OK(fieldreport_client_stats_json(c, &json));
    CHECK(json && strstr(json, "\"pending\":0"));
    fieldreport_string_free(json);
    CHECK_OK(fieldreport_client_list_json(c, 1u << FIELDREPORT_REPORT_STATE_DELIVERED, 1, &json));
    CHECK(json && json[0] == '[' && strstr(json, "\"kind\":\"crash\""));
    fieldreport_string_free(json);

    /* The callback heard both deliveries, on this (the flushing) thread. */
    CHECK(recorded(rec, &rec->delivered) == 2);
    CHECK(recorded(rec, &rec->receipt_ok) == 2);
    CHECK(recorded(rec, &rec->json_ok) == recorded(rec, &rec->calls));
    CHECK(recorded(rec, &rec->on_other_thread) == 0);
    free(shot);
}

/* The outbox as seen from outside: every report, and the attachment copies. */
typedef struct {
    char *reports;
    int files;
} snapshot;

static snapshot take(fieldreport_client *c, const char *files_dir) {
    snapshot s;
    s.reports = NULL;
    if (fieldreport_client_list_json(c, 0, 0, &s.reports) != FIELDREPORT_STATUS_OK) s.reports = NULL;
    s.files = count_files(files_dir);
    return s;
}

/* The message of the last call refused in BAD (later calls replace the
 * last error). */
static char g_refusal[2048];

/* Each row: a call that must fail with its own status and leave the outbox
 * exactly as it was. */
#define BAD(call, want)                                                                       \
    do {                                                                                      \
        snapshot before_ = take(c, files_dir);                                                \
        snapshot after_;                                                                      \
        int st_ = (int)(call);                                                                \
        check_status(st_, (int)(want), __LINE__, #call);                                      \
        snprintf(g_refusal, sizeof g_refusal, "%s", last_error());                            \
        check(strlen(g_refusal) > 0, __LINE__, "a message explains: " #call);                 \
        after_ = take(c, files_dir);                                                          \
        check(before_.reports && after_.reports && strcmp(before_.reports, after_.reports) == 0 \
                  && before_.files == after_.files,                                           \
              __LINE__, "outbox unchanged after: " #call);                                    \
        fieldreport_string_free(before_.reports);                                             \
        fieldreport_string_free(after_.reports);                                              \
    } while (0)

static void test_bad_inputs(fieldreport_client *c, const char *outbox) {
    char *files_dir = join(outbox, "files");
    char *missing = join(g_dir, "no-such-file.png");
    char *shot = join(g_dir, "bad-shot.png");
    char dummy_text[4] = "xyz";
    char *json = dummy_text;
    int64_t id = 77, delivered_id;
    fieldreport_report_state state = FIELDREPORT_REPORT_STATE_DEAD;
    fieldreport_stats stats;
    fieldreport_feedback *fb = NULL, *empty = NULL, *blank = NULL, *two_lines = NULL,
                         *missing_att = NULL, *dir_att = NULL, *bad_key = NULL, *dup_name = NULL;
    fieldreport_crash *crash_empty = NULL, *crash_missing = NULL, *crash = NULL;
    fieldreport_feedback *out_fb = NULL;
    fieldreport_crash *out_crash = NULL;
    fieldreport_flush_result *result = NULL;

    write_file(shot, PNG, sizeof PNG);
    CHECK_OK(fieldreport_feedback_new("A good summary", &fb));
    CHECK_OK(fieldreport_feedback_new("", &empty));
    CHECK_OK(fieldreport_feedback_new("   ", &blank));
    CHECK_OK(fieldreport_feedback_new("line one\nline two", &two_lines));
    CHECK_OK(fieldreport_feedback_new("missing attachment", &missing_att));
    CHECK_OK(fieldreport_feedback_attach_file(missing_att, "Screenshot", shot, NULL, NULL));
    CHECK_OK(fieldreport_feedback_attach_file(missing_att, "Screenshot", missing, NULL, NULL));
    CHECK_OK(fieldreport_feedback_new("directory attachment", &dir_att));
    CHECK_OK(fieldreport_feedback_attach_file(dir_att, "Screenshot", g_dir, "dir.png", NULL));
    CHECK_OK(fieldreport_feedback_new("bad element key", &bad_key));
    CHECK_OK(fieldreport_feedback_attach_bytes(bad_key, "a/b", "x.txt", (const uint8_t *)"x", 1, NULL));
    CHECK_OK(fieldreport_feedback_new("bad file name", &dup_name));
    CHECK_OK(fieldreport_feedback_attach_bytes(dup_name, "Log", "a/b.txt", (const uint8_t *)"x", 1, NULL));
    CHECK_OK(fieldreport_crash_new_text("", &crash_empty));
    CHECK_OK(fieldreport_crash_new_file(missing, &crash_missing));
    CHECK_OK(fieldreport_crash_new_text("segfault at 0x0", &crash));

    /* One delivered report, for the wrong-state retry. */
    CHECK_OK(fieldreport_client_submit(c, fb, &delivered_id));
    CHECK_OK(fieldreport_client_flush(c, 60000, NULL));
    CHECK_OK(fieldreport_client_report_state(c, delivered_id, &state));
    CHECK((int)state == FIELDREPORT_REPORT_STATE_DELIVERED);

    /* NULL for every pointer argument of the client functions. */
    BAD(fieldreport_client_submit(NULL, fb, &id), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_submit(c, NULL, &id), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK(id == 0); /* out-pointers are reset before a refusal */
    BAD(fieldreport_client_submit_crash(NULL, crash, &id), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_submit_crash(c, NULL, &id), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_flush(NULL, 1000, &result), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK(result == NULL);
    BAD(fieldreport_client_report_state(NULL, delivered_id, &state), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_report_state(c, delivered_id, NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_report_json(NULL, delivered_id, &json), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_report_json(c, delivered_id, NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_list_json(NULL, 0, 0, &json), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_list_json(c, 0, 0, NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_stats(NULL, &stats), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_stats(c, NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_stats_json(NULL, &json), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_stats_json(c, NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_retry(NULL, delivered_id), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_purge(NULL, delivered_id), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_purge_all(NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_set_consent(NULL, false), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_set_online(NULL, false), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_set_metered(NULL, true), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_set_api_key(NULL, SANDBOX_KEY), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_set_api_key(c, NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_start_sender(NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_stop_sender(NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_set_callback(NULL, on_event, NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_client_close(NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK(json == NULL);
    CHECK((int)state == 0);

    /* NULL for every required pointer of the builders. */
    BAD(fieldreport_feedback_new(NULL, &out_fb), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_feedback_new("x", NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_feedback_set_description(NULL, "d"), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_feedback_set_submitter(NULL, "s"), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_feedback_set_field_string(NULL, "n", "v"), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_feedback_set_field_string(fb, NULL, "v"), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_feedback_set_field_string(fb, "n", NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_feedback_set_field_int(fb, NULL, 1), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_feedback_set_field_json(fb, "n", NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_feedback_attach_file(NULL, "Screenshot", shot, NULL, NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_feedback_attach_file(fb, NULL, shot, NULL, NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_feedback_attach_file(fb, "Screenshot", NULL, NULL, NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_feedback_attach_bytes(fb, "Log", NULL, (const uint8_t *)"x", 1, NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_feedback_attach_bytes(fb, "Log", "x.txt", NULL, 5, NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_crash_new_text(NULL, &out_crash), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_crash_new_file(NULL, &out_crash), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_crash_new_text("log", NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_crash_set_summary(NULL, "s"), FIELDREPORT_STATUS_NULL_ARGUMENT);
    BAD(fieldreport_crash_attach_bytes(crash, NULL, "x", (const uint8_t *)"x", 1, NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK(out_fb == NULL && out_crash == NULL);

    /* Invalid UTF-8 in each kind of text argument. */
    BAD(fieldreport_feedback_new(BAD_UTF8, &out_fb), FIELDREPORT_STATUS_INVALID_UTF8);
    BAD(fieldreport_feedback_set_description(fb, BAD_UTF8), FIELDREPORT_STATUS_INVALID_UTF8);
    BAD(fieldreport_feedback_set_submitter(fb, BAD_UTF8), FIELDREPORT_STATUS_INVALID_UTF8);
    BAD(fieldreport_feedback_set_field_string(fb, BAD_UTF8, "v"), FIELDREPORT_STATUS_INVALID_UTF8);
    BAD(fieldreport_feedback_set_field_string(fb, "n", BAD_UTF8), FIELDREPORT_STATUS_INVALID_UTF8);
    BAD(fieldreport_feedback_attach_bytes(fb, BAD_UTF8, "x.txt", (const uint8_t *)"x", 1, NULL), FIELDREPORT_STATUS_INVALID_UTF8);
    BAD(fieldreport_feedback_attach_file(fb, "Screenshot", shot, NULL, BAD_UTF8), FIELDREPORT_STATUS_INVALID_UTF8);
    BAD(fieldreport_crash_new_text(BAD_UTF8, &out_crash), FIELDREPORT_STATUS_INVALID_UTF8);
    BAD(fieldreport_crash_set_summary(crash, BAD_UTF8), FIELDREPORT_STATUS_INVALID_UTF8);
    BAD(fieldreport_client_set_api_key(c, BAD_UTF8), FIELDREPORT_STATUS_INVALID_UTF8);
    CHECK(out_fb == NULL && out_crash == NULL);

    /* Malformed JSON field. */
    BAD(fieldreport_feedback_set_field_json(fb, "n", "{not json"), FIELDREPORT_STATUS_INVALID_INPUT);

    /* Reports the library refuses at submit. */
    BAD(fieldreport_client_submit(c, empty, &id), FIELDREPORT_STATUS_INVALID_INPUT);
    CHECK(id == 0);
    BAD(fieldreport_client_submit(c, blank, &id), FIELDREPORT_STATUS_INVALID_INPUT);
    BAD(fieldreport_client_submit(c, two_lines, &id), FIELDREPORT_STATUS_INVALID_INPUT);
    BAD(fieldreport_client_submit(c, missing_att, &id), FIELDREPORT_STATUS_ATTACHMENT_UNREADABLE);
    CHECK(strstr(g_refusal, "no-such-file.png") != NULL);
    BAD(fieldreport_client_submit(c, dir_att, &id), FIELDREPORT_STATUS_ATTACHMENT_UNREADABLE);
    BAD(fieldreport_client_submit(c, bad_key, &id), FIELDREPORT_STATUS_INVALID_INPUT);
    BAD(fieldreport_client_submit(c, dup_name, &id), FIELDREPORT_STATUS_INVALID_INPUT);
    BAD(fieldreport_client_submit_crash(c, crash_empty, &id), FIELDREPORT_STATUS_INVALID_INPUT);
    BAD(fieldreport_client_submit_crash(c, crash_missing, &id), FIELDREPORT_STATUS_ATTACHMENT_UNREADABLE);

    /* Calls that do not apply. */
    BAD(fieldreport_client_retry(c, delivered_id), FIELDREPORT_STATUS_INVALID_STATE);
    BAD(fieldreport_client_retry(c, 987654321), FIELDREPORT_STATUS_NOT_FOUND);
    BAD(fieldreport_client_purge(c, 987654321), FIELDREPORT_STATUS_NOT_FOUND);
    BAD(fieldreport_client_report_state(c, 987654321, &state), FIELDREPORT_STATUS_NOT_FOUND);
    CHECK((int)state == 0);
    json = dummy_text;
    BAD(fieldreport_client_report_json(c, 987654321, &json), FIELDREPORT_STATUS_NOT_FOUND);
    CHECK(json == NULL);
    BAD(fieldreport_client_list_json(c, 1u << 10, 0, &json), FIELDREPORT_STATUS_INVALID_INPUT);
    BAD(fieldreport_client_set_api_key(c, ""), FIELDREPORT_STATUS_INVALID_INPUT);
    BAD(fieldreport_client_set_api_key(c, "has space"), FIELDREPORT_STATUS_INVALID_INPUT);

    /* The builders survived all that and still work. */
    CHECK_OK(fieldreport_client_submit(c, fb, &id));
    CHECK(id > delivered_id);
    CHECK_OK(fieldreport_client_purge(c, id));
    CHECK_STATUS(fieldreport_client_report_state(c, id, &state), FIELDREPORT_STATUS_NOT_FOUND);

    fieldreport_feedback_free(fb);
    fieldreport_feedback_free(empty);
    fieldreport_feedback_free(blank);
    fieldreport_feedback_free(two_lines);
    fieldreport_feedback_free(missing_att);
    fieldreport_feedback_free(dir_att);
    fieldreport_feedback_free(bad_key);
    fieldreport_feedback_free(dup_name);
    fieldreport_crash_free(crash_empty);
    fieldreport_crash_free(crash_missing);
    fieldreport_crash_free(crash);
    free(files_dir);
    free(missing);
    free(shot);
}

/* A report's JSON document contains `needle`. */
static int report_has(fieldreport_client *c, int64_t id, const char *needle) {
    char *json = NULL;
    int found = fieldreport_client_report_json(c, id, &json) == FIELDREPORT_STATUS_OK && json &&
                strstr(json, needle) != NULL;
    fieldreport_string_free(json);
    return found;
}

static void test_submit_many(fieldreport_client *c, const char *outbox) {
    char *files_dir = join(outbox, "files");
    char *missing = join(g_dir, "no-such-batch-file.png");
    char summary0[128], summary1[128], crash_log[128];
    fieldreport_feedback *fb0 = NULL, *fb1 = NULL, *blank = NULL, *missing_att = NULL;
    fieldreport_crash *crash0 = NULL, *crash_empty = NULL;
    const fieldreport_feedback *fbs[2];
    const fieldreport_crash *crashes[2];
    fieldreport_flush_result *result = NULL;
    fieldreport_report_state state;
    fieldreport_stats stats;
    snapshot before, after;
    int64_t ids[4];
    size_t i;

    snprintf(summary0, sizeof summary0, "Batch feedback zero (pid %ld)", (long)getpid());
    snprintf(summary1, sizeof summary1, "Batch feedback one (pid %ld)", (long)getpid());
    snprintf(crash_log, sizeof crash_log, "panic: batch crash two (pid %ld)\nat main.c:1",
             (long)getpid());
    CHECK_OK(fieldreport_feedback_new(summary0, &fb0));
    CHECK_OK(fieldreport_feedback_attach_bytes(fb0, "Log", "batch-zero.txt",
                                               (const uint8_t *)"batch bytes\n", 12, NULL));
    CHECK_OK(fieldreport_feedback_new(summary1, &fb1));
    CHECK_OK(fieldreport_feedback_set_field_int(fb1, "topic", 4242));
    CHECK_OK(fieldreport_crash_new_text(crash_log, &crash0));
    CHECK_OK(fieldreport_feedback_new("   ", &blank));
    CHECK_OK(fieldreport_feedback_new("batch item with a missing file", &missing_att));
    CHECK_OK(fieldreport_feedback_attach_file(missing_att, "Screenshot", missing, NULL, NULL));
    CHECK_OK(fieldreport_crash_new_text("", &crash_empty));

    /* Feedback first, then crashes, each in array order; ids in that order. */
    fbs[0] = fb0;
    fbs[1] = fb1;
    crashes[0] = crash0;
    for (i = 0; i < 4; i++) ids[i] = -1;
    CHECK_OK(fieldreport_client_submit_many(c, fbs, 2, crashes, 1, ids));
    CHECK(ids[0] > 0 && ids[1] > ids[0] && ids[2] > ids[1]);
    CHECK(ids[3] == -1); /* only feedback_count + crash_count elements are written */
    CHECK(report_has(c, ids[0], summary0) && report_has(c, ids[0], "\"kind\":\"feedback\""));
    CHECK(report_has(c, ids[1], summary1) && report_has(c, ids[1], "\"kind\":\"feedback\""));
    CHECK(report_has(c, ids[2], "batch crash two") && report_has(c, ids[2], "\"kind\":\"crash\""));
    CHECK_OK(fieldreport_client_report_state(c, ids[0], &state));
    CHECK((int)state == FIELDREPORT_REPORT_STATE_QUEUED);
    CHECK_OK(fieldreport_client_stats(c, &stats));
    CHECK(stats.pending == 3);

    /* Delivered like single submits, oldest first. */
    CHECK_OK(fieldreport_client_flush(c, 60000, &result));
    CHECK(fieldreport_flush_result_receipt_count(result) == 3);
    CHECK(fieldreport_flush_result_pending(result) == 0);
    for (i = 0; i < 3; i++) {
        const fieldreport_receipt *r = fieldreport_flush_result_receipt(result, i);
        CHECK(r != NULL && r->id == ids[i] && (int)r->state == FIELDREPORT_REPORT_STATE_DELIVERED &&
              r->server_key && strncmp(r->server_key, "BUG-", 4) == 0);
    }
    fieldreport_flush_result_free(result);
    CHECK(sandbox_has(summary0) && sandbox_has(summary1) && sandbox_has("batch crash two"));
    CHECK(sandbox_has("batch-zero.txt") && sandbox_has("\"topic\":4242"));

    /* The builders were only read: still the caller's, and usable again.
     * out_ids may be NULL. */
    CHECK_OK(fieldreport_client_submit_many(c, fbs, 1, NULL, 0, NULL));
    CHECK_OK(fieldreport_client_stats(c, &stats));
    CHECK(stats.pending == 1);
    CHECK_OK(fieldreport_client_flush(c, 60000, NULL));
    /* The copies of delivered reports are deleted on a helper thread: wait
     * for that, so that the snapshots below compare a settled outbox. */
    for (i = 0; i < 200 && count_files(files_dir) != 0; i++) sleep_ms(50);
    CHECK(count_files(files_dir) == 0);

    /* An empty batch: OK, nothing stored, nothing written to out_ids. */
    before = take(c, files_dir);
    ids[0] = 77;
    CHECK_OK(fieldreport_client_submit_many(c, NULL, 0, NULL, 0, ids));
    CHECK_OK(fieldreport_client_submit_many(c, fbs, 0, crashes, 0, NULL));
    CHECK(ids[0] == 77);
    after = take(c, files_dir);
    CHECK(before.reports && after.reports && strcmp(before.reports, after.reports) == 0 &&
          before.files == after.files);
    fieldreport_string_free(before.reports);
    fieldreport_string_free(after.reports);

    /* One bad item refuses the whole batch with that item's status, names
     * it (counting feedback first, then crashes) and stores nothing: not
     * even the staged copy of item 0's attachment. out_ids are all 0. */
    fbs[1] = blank;
    for (i = 0; i < 4; i++) ids[i] = 99;
    BAD(fieldreport_client_submit_many(c, fbs, 2, crashes, 1, ids), FIELDREPORT_STATUS_INVALID_INPUT);
    CHECK(strstr(g_refusal, "batch item 1") != NULL && strstr(g_refusal, "summary") != NULL);
    CHECK(ids[0] == 0 && ids[1] == 0 && ids[2] == 0 && ids[3] == 99);

    fbs[1] = fb1;
    crashes[1] = crash_empty;
    BAD(fieldreport_client_submit_many(c, fbs, 2, crashes, 2, ids), FIELDREPORT_STATUS_INVALID_INPUT);
    CHECK(strstr(g_refusal, "batch item 3") != NULL);
    CHECK(ids[0] == 0 && ids[3] == 0);

    fbs[1] = missing_att;
    BAD(fieldreport_client_submit_many(c, fbs, 2, crashes, 1, ids),
        FIELDREPORT_STATUS_ATTACHMENT_UNREADABLE);
    CHECK(strstr(g_refusal, "batch item 1") != NULL &&
          strstr(g_refusal, "no-such-batch-file.png") != NULL);

    /* NULL arrays with a count, NULL elements, a NULL client. */
    fbs[1] = fb1;
    for (i = 0; i < 4; i++) ids[i] = 99;
    BAD(fieldreport_client_submit_many(NULL, fbs, 2, crashes, 1, ids), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK(ids[0] == 0 && ids[1] == 0 && ids[2] == 0); /* reset even then */
    BAD(fieldreport_client_submit_many(c, NULL, 2, crashes, 1, ids), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK(strstr(g_refusal, "feedback is NULL") != NULL);
    BAD(fieldreport_client_submit_many(c, fbs, 2, NULL, 1, ids), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK(strstr(g_refusal, "crashes is NULL") != NULL);
    fbs[1] = NULL;
    BAD(fieldreport_client_submit_many(c, fbs, 2, crashes, 1, ids), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK(strstr(g_refusal, "feedback[1]") != NULL);
    fbs[1] = fb1;
    crashes[0] = NULL;
    BAD(fieldreport_client_submit_many(c, fbs, 2, crashes, 1, NULL), FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK(strstr(g_refusal, "crashes[0]") != NULL);
    /* Counts no array can hold are refused before anything is read. */
    BAD(fieldreport_client_submit_many(c, fbs, SIZE_MAX, crashes, 1, NULL), FIELDREPORT_STATUS_INVALID_INPUT);
    CHECK(strstr(g_refusal, "too large") != NULL);

    fieldreport_feedback_free(fb0);
    fieldreport_feedback_free(fb1);
    fieldreport_feedback_free(blank);
    fieldreport_feedback_free(missing_att);
    fieldreport_crash_free(crash0);
    fieldreport_crash_free(crash_empty);
    free(missing);
    free(files_dir);
}

static int64_t submit_simple(fieldreport_client *c, const char *summary) {
    fieldreport_feedback *fb = NULL;
    int64_t id = 0;
    CHECK_OK(fieldreport_feedback_new(summary, &fb));
    CHECK_OK(fieldreport_client_submit(c, fb, &id));
    fieldreport_feedback_free(fb);
    return id;
}

/* A multi-MB upload reports its progress through the callback, ending once
 * at the file's size. */
static void test_progress(fieldreport_client *c, recorder *rec) {
    enum { BIG = 3 * 1024 * 1024 };
    fieldreport_feedback *fb = NULL;
    uint8_t *data = (uint8_t *)malloc(BIG);
    int64_t id = 0;
    int before;
    if (!data) {
        CHECK(0);
        return;
    }
    memset(data, 7, BIG);
    before = recorded(rec, &rec->progress);
    CHECK_OK(fieldreport_feedback_new("A big upload", &fb));
    CHECK_OK(fieldreport_feedback_attach_bytes(fb, "Screenshot", "big.bin", data, BIG, NULL));
    CHECK_OK(fieldreport_client_submit(c, fb, &id));
    fieldreport_feedback_free(fb);
    free(data);
    CHECK_OK(fieldreport_client_flush(c, 60000, NULL));
    pthread_mutex_lock(&rec->mu);
    /* At least the start (0) and the end; every one named, with its JSON. */
    CHECK(rec->progress - before >= 2);
    CHECK(rec->progress_named == rec->progress - before);
    CHECK(rec->progress_at_total == 1);
    CHECK(rec->progress_total == BIG);
    CHECK(rec->progress_last_sent == BIG);
    pthread_mutex_unlock(&rec->mu);
}

static void test_dead_and_retry(fieldreport_client *c, recorder *rec) {
    fieldreport_flush_result *result = NULL;
    const fieldreport_receipt *r;
    fieldreport_report_state state;
    char *json = NULL;
    char *answer;
    int64_t id;
    int dead_before = recorded(rec, &rec->dead);

    /* The server refuses the next create with a 400: the report is dead. */
    answer = http("POST", "/_sandbox/faults", "[{\"status\":400}]");
    CHECK(answer != NULL);
    free(answer);
    id = submit_simple(c, "This one the server refuses once");
    CHECK_OK(fieldreport_client_flush(c, 60000, &result));
    r = fieldreport_flush_result_receipt(result, 0);
    CHECK(r != NULL && r->id == id && (int)r->state == FIELDREPORT_REPORT_STATE_DEAD);
    CHECK(r != NULL && r->http_status == 400 && r->error != NULL && r->server_key == NULL);
    CHECK(fieldreport_flush_result_dead(result) >= 1);
    fieldreport_flush_result_free(result);
    CHECK(recorded(rec, &rec->dead) == dead_before + 1);
    CHECK(recorded(rec, &rec->last_http_status) == 400);
    CHECK_OK(fieldreport_client_report_json(c, id, &json));
    CHECK(json && strstr(json, "\"state\":\"dead\"") && strstr(json, "\"status\":400"));
    fieldreport_string_free(json);

    /* Retry puts it back; the next flush delivers it. */
    CHECK_OK(fieldreport_client_retry(c, id));
    CHECK_OK(fieldreport_client_report_state(c, id, &state));
    CHECK((int)state == FIELDREPORT_REPORT_STATE_QUEUED);
    CHECK_OK(fieldreport_client_flush(c, 60000, NULL));
    CHECK_OK(fieldreport_client_report_state(c, id, &state));
    CHECK((int)state == FIELDREPORT_REPORT_STATE_DELIVERED);
}

static void test_consent_and_offline(fieldreport_client *c) {
    fieldreport_flush_result *result = NULL;
    fieldreport_report_state state;
    fieldreport_stats stats;
    int64_t id;

    CHECK_OK(fieldreport_client_set_consent(c, false));
    id = submit_simple(c, "Kept until the user agrees");
    CHECK_OK(fieldreport_client_flush(c, 5000, &result));
    CHECK(fieldreport_flush_result_receipt_count(result) == 0);
    CHECK(fieldreport_flush_result_pending(result) == 1);
    CHECK(fieldreport_flush_result_stopped(result) &&
          strstr(fieldreport_flush_result_stopped(result), "consent"));
    fieldreport_flush_result_free(result);
    CHECK_OK(fieldreport_client_stats(c, &stats));
    CHECK(!stats.consent && stats.pending == 1);
    CHECK_OK(fieldreport_client_set_consent(c, true));

    CHECK_OK(fieldreport_client_set_online(c, false));
    CHECK_OK(fieldreport_client_flush(c, 5000, &result));
    CHECK(fieldreport_flush_result_stopped(result) &&
          strstr(fieldreport_flush_result_stopped(result), "offline"));
    fieldreport_flush_result_free(result);
    CHECK_OK(fieldreport_client_set_online(c, true));
    CHECK_OK(fieldreport_client_set_metered(c, true));
    CHECK_OK(fieldreport_client_set_metered(c, false));

    CHECK_OK(fieldreport_client_flush(c, 60000, NULL));
    CHECK_OK(fieldreport_client_report_state(c, id, &state));
    CHECK((int)state == FIELDREPORT_REPORT_STATE_DELIVERED);
}

static void test_auth_pause_and_redaction(fieldreport_client *c, recorder *rec) {
    fieldreport_flush_result *result = NULL;
    fieldreport_report_state state;
    fieldreport_stats stats;
    char *json = NULL;
    int64_t id;
    int paused_before = recorded(rec, &rec->paused);

    /* The server refuses this key: delivery pauses, the key shows nowhere. */
    CHECK_OK(fieldreport_client_set_api_key(c, WRONG_KEY));
    id = submit_simple(c, "Sent with a revoked key");
    CHECK_OK(fieldreport_client_flush(c, 60000, &result));
    CHECK(fieldreport_flush_result_stopped(result) &&
          strstr(fieldreport_flush_result_stopped(result), "paused"));
    CHECK(strstr(fieldreport_flush_result_json(result), WRONG_KEY) == NULL);
    fieldreport_flush_result_free(result);
    CHECK(recorded(rec, &rec->paused) == paused_before + 1);
    CHECK(recorded(rec, &rec->last_http_status) == 401);
    CHECK(recorded(rec, &rec->secret_seen) == 0);
    CHECK_OK(fieldreport_client_stats(c, &stats));
    CHECK(stats.paused_for_auth);
    CHECK_OK(fieldreport_client_stats_json(c, &json));
    CHECK(json && strstr(json, WRONG_KEY) == NULL && strstr(json, "\"paused_for_auth\":true"));
    fieldreport_string_free(json);
    CHECK_OK(fieldreport_client_report_json(c, id, &json));
    CHECK(json && strstr(json, WRONG_KEY) == NULL);
    fieldreport_string_free(json);
    CHECK_OK(fieldreport_client_report_state(c, id, &state));
    CHECK((int)state == FIELDREPORT_REPORT_STATE_QUEUED);

    /* A new key resumes at once. */
    CHECK_OK(fieldreport_client_set_api_key(c, SANDBOX_KEY));
    CHECK_OK(fieldreport_client_flush(c, 60000, NULL));
    CHECK_OK(fieldreport_client_report_state(c, id, &state));
    CHECK((int)state == FIELDREPORT_REPORT_STATE_DELIVERED);
    CHECK_OK(fieldreport_client_stats(c, &stats));
    CHECK(!stats.paused_for_auth);
}

typedef struct {
    fieldreport_client *client;
    int calls;
    int set_callback;
    int stop_sender;
    int close_client;
    int stats;
    int free_refused;
} reentry;

static void reentrant_event(void *user_data, const fieldreport_event *ev) {
    reentry *r = (reentry *)user_data;
    fieldreport_stats stats;
    (void)ev;
    r->calls++;
    r->set_callback = (int)fieldreport_client_set_callback(r->client, NULL, NULL);
    r->stop_sender = (int)fieldreport_client_stop_sender(r->client);
    r->close_client = (int)fieldreport_client_close(r->client);
    r->stats = (int)fieldreport_client_stats(r->client, &stats);
    fieldreport_client_free(r->client); /* refused: must not free */
    r->free_refused = strstr(last_error(), "callback") != NULL;
}

static void test_callback_rules(fieldreport_client *c, recorder *rec) {
    reentry r;
    int64_t id;
    memset(&r, 0, sizeof r);
    r.client = c;
    CHECK_OK(fieldreport_client_set_callback(c, reentrant_event, &r));
    id = submit_simple(c, "Delivered while the callback misbehaves");
    CHECK_OK(fieldreport_client_flush(c, 60000, NULL));
    CHECK(r.calls >= 1);
    CHECK(r.set_callback == FIELDREPORT_STATUS_IN_CALLBACK);
    CHECK(r.stop_sender == FIELDREPORT_STATUS_IN_CALLBACK);
    CHECK(r.close_client == FIELDREPORT_STATUS_IN_CALLBACK);
    CHECK(r.stats == FIELDREPORT_STATUS_OK);
    CHECK(r.free_refused);
    /* The client is alive and open. */
    CHECK(submit_simple(c, "Still open") > id);
    /* Removing the callback: it is never called again. */
    CHECK_OK(fieldreport_client_set_callback(c, NULL, NULL));
    r.calls = 0;
    CHECK_OK(fieldreport_client_flush(c, 60000, NULL));
    CHECK(r.calls == 0);
    CHECK_OK(fieldreport_client_set_callback(c, on_event, rec));
}

static void test_background_sender(fieldreport_client *c, recorder *rec) {
    fieldreport_report_state state = FIELDREPORT_REPORT_STATE_QUEUED;
    int64_t id;
    int waited = 0;
    int other_before = recorded(rec, &rec->on_other_thread);

    CHECK_OK(fieldreport_client_start_sender(c));
    CHECK_OK(fieldreport_client_start_sender(c)); /* idempotent */
    id = submit_simple(c, "Sent by the background sender");
    while (waited < 60000) {
        if (fieldreport_client_report_state(c, id, &state) == FIELDREPORT_STATUS_OK &&
            (int)state == FIELDREPORT_REPORT_STATE_DELIVERED)
            break;
        sleep_ms(50);
        waited += 50;
    }
    CHECK((int)state == FIELDREPORT_REPORT_STATE_DELIVERED);
    CHECK_OK(fieldreport_client_stop_sender(c));
    CHECK_OK(fieldreport_client_stop_sender(c));
    /* The DELIVERED event came on the sender's thread. */
    CHECK(recorded(rec, &rec->on_other_thread) > other_before);
}

static void test_limits(void) {
    char *outbox = join(g_dir, "limits");
    fieldreport_config *cfg = make_config(outbox);
    fieldreport_client *c = NULL;
    fieldreport_feedback *fb = NULL, *big_fb = NULL;
    const fieldreport_feedback *batch[3];
    char *files_dir = join(outbox, "files");
    unsigned char big[100];
    int64_t id = 0, ids[3];

    memset(big, 'x', sizeof big);
    CHECK_OK(fieldreport_config_set_policy(cfg, FIELDREPORT_POLICY_MAX_ATTACHMENT_BYTES, 10));
    CHECK_OK(fieldreport_config_set_policy(cfg, FIELDREPORT_POLICY_MAX_ATTACHMENTS, 1));
    CHECK_OK(fieldreport_config_set_policy(cfg, FIELDREPORT_POLICY_MAX_REPORTS, 2));
    CHECK_OK(fieldreport_client_open(cfg, &c));
    fieldreport_config_free(cfg);

    CHECK_OK(fieldreport_feedback_new("Too big", &fb));
    CHECK_OK(fieldreport_feedback_attach_bytes(fb, "Log", "big.txt", big, sizeof big, "text/plain"));
    BAD(fieldreport_client_submit(c, fb, &id), FIELDREPORT_STATUS_ATTACHMENT_TOO_LARGE);
    CHECK_OK(fieldreport_feedback_attach_bytes(fb, "Log", "b.txt", big, 1, NULL));
    BAD(fieldreport_client_submit(c, fb, &id), FIELDREPORT_STATUS_INVALID_INPUT);
    fieldreport_feedback_free(fb);

    /* A batch larger than MAX_REPORTS is refused as a whole; so is one
     * with an attachment over the limit (named by its file). */
    CHECK_OK(fieldreport_feedback_new("Small enough", &fb));
    batch[0] = batch[1] = batch[2] = fb;
    BAD(fieldreport_client_submit_many(c, batch, 3, NULL, 0, ids), FIELDREPORT_STATUS_OUTBOX_FULL);
    CHECK(ids[0] == 0 && ids[1] == 0 && ids[2] == 0);
    CHECK_OK(fieldreport_feedback_new("Too big, in a batch", &big_fb));
    CHECK_OK(fieldreport_feedback_attach_bytes(big_fb, "Log", "big-in-batch.txt", big, sizeof big, NULL));
    batch[1] = big_fb;
    BAD(fieldreport_client_submit_many(c, batch, 2, NULL, 0, ids),
        FIELDREPORT_STATUS_ATTACHMENT_TOO_LARGE);
    CHECK(strstr(g_refusal, "big-in-batch.txt") != NULL);
    /* Two fit. */
    batch[1] = fb;
    CHECK_OK(fieldreport_client_submit_many(c, batch, 2, NULL, 0, ids));
    CHECK(ids[0] > 0 && ids[1] > ids[0]);
    fieldreport_feedback_free(fb);
    fieldreport_feedback_free(big_fb);

    fieldreport_client_free(c);
    free(files_dir);
    free(outbox);
}

static void test_close(fieldreport_client *c) {
    fieldreport_feedback *fb = NULL;
    int64_t id = 0;
    CHECK_OK(fieldreport_client_start_sender(c));
    CHECK_OK(fieldreport_client_close(c));
    CHECK_OK(fieldreport_feedback_new("After close", &fb));
    CHECK_STATUS(fieldreport_client_submit(c, fb, &id), FIELDREPORT_STATUS_CLOSED);
    CHECK_STATUS(fieldreport_client_flush(c, 1000, NULL), FIELDREPORT_STATUS_CLOSED);
    CHECK_STATUS(fieldreport_client_start_sender(c), FIELDREPORT_STATUS_CLOSED);
    fieldreport_feedback_free(fb);
}

/* ------------------------------------------------------------------------ */
/* Other destinations                                                       */
/* ------------------------------------------------------------------------ */

static void test_abc_config(void) {
    fieldreport_config *cfg = (fieldreport_config *)&g_passed; /* garbage, must be reset */
    char *outbox = join(g_dir, "abc-config");
    const char *secret = "ABC-SECRET-0123456789";

    /* NULL for every pointer argument. */
    CHECK_STATUS(fieldreport_config_new_abc(NULL, g_abc_url, "1", "1", "k", &cfg),
                 FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK(cfg == NULL);
    CHECK_STATUS(fieldreport_config_new_abc(outbox, NULL, "1", "1", "k", &cfg),
                 FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK(strcmp(last_error(), "base_url is NULL") == 0);
    CHECK_STATUS(fieldreport_config_new_abc(outbox, g_abc_url, NULL, "1", "k", &cfg),
                 FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_config_new_abc(outbox, g_abc_url, "1", NULL, "k", &cfg),
                 FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_config_new_abc(outbox, g_abc_url, "1", "1", NULL, &cfg),
                 FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_config_new_abc(outbox, g_abc_url, "1", "1", "k", NULL),
                 FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK(cfg == NULL);
    CHECK_STATUS(fieldreport_config_new_abc(outbox, g_abc_url, BAD_UTF8, "1", "k", &cfg),
                 FIELDREPORT_STATUS_INVALID_UTF8);
    CHECK(cfg == NULL);

    /* Checked when made: each bad argument is named, and no config is made. */
    CHECK_STATUS(fieldreport_config_new_abc(outbox, g_abc_url, "one", "1", secret, &cfg),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK(cfg == NULL);
    CHECK(strstr(last_error(), "project_id: must be a number") != NULL);
    CHECK(strstr(last_error(), secret) == NULL);
    CHECK_STATUS(fieldreport_config_new_abc(outbox, g_abc_url, "1", "0", secret, &cfg),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK(cfg == NULL && strstr(last_error(), "channel_id") != NULL);
    CHECK_STATUS(fieldreport_config_new_abc(outbox, "feedback.example.com", "1", "1", secret, &cfg),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK(cfg == NULL && strstr(last_error(), "base_url") != NULL);
    CHECK_STATUS(fieldreport_config_new_abc(outbox, g_abc_url, "1", "1", "", &cfg),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK(cfg == NULL && strstr(last_error(), "api_key") != NULL);

    CHECK_OK(fieldreport_config_new_abc(outbox, g_abc_url, "1", "1", secret, &cfg));
    CHECK(cfg != NULL);

    /* Field roles: NULLs, an unknown role, a reserved key, a field used twice. */
    CHECK_STATUS(fieldreport_config_set_abc_field(NULL, "summary", "message"),
                 FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_config_set_abc_field(cfg, NULL, "message"),
                 FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_config_set_abc_field(cfg, "summary", BAD_UTF8),
                 FIELDREPORT_STATUS_INVALID_UTF8);
    CHECK_STATUS(fieldreport_config_set_abc_field(cfg, "title", "message"),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK(strstr(last_error(), "map.title: unknown role") != NULL);
    CHECK_STATUS(fieldreport_config_set_abc_field(cfg, "client_id", "id"),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK(strstr(last_error(), "reserves") != NULL);
    CHECK_OK(fieldreport_config_set_abc_field(cfg, "description", "description"));
    CHECK_STATUS(fieldreport_config_set_abc_field(cfg, "submitter", "description"),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK(strstr(last_error(), "already receives another role") != NULL);

    /* Issue names: NULL array with a count, an empty name. */
    CHECK_STATUS(fieldreport_config_set_abc_issue_names(cfg, NULL, 1),
                 FIELDREPORT_STATUS_NULL_ARGUMENT);
    {
        const char *empty[1] = {""};
        CHECK_STATUS(fieldreport_config_set_abc_issue_names(cfg, empty, 1),
                     FIELDREPORT_STATUS_INVALID_CONFIG);
    }
    CHECK_OK(fieldreport_config_set_abc_issue_names(cfg, NULL, 0));

    /* Other destinations' setters are refused by name; common ones apply. */
    CHECK_STATUS(fieldreport_config_set_base_url(cfg, "http://127.0.0.1:1/api/v1"),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK(strstr(last_error(), "fieldreport_config_set_base_url") != NULL &&
          strstr(last_error(), "delivers to abc") != NULL);
    CHECK_STATUS(fieldreport_config_set_company(cfg, "acme"), FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK_STATUS(fieldreport_config_set_context_field(cfg, "os", "OS"),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK_STATUS(fieldreport_config_set_crash_element_key(cfg, "Log"),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK_STATUS(fieldreport_config_set_client_id_lookup(cfg, "cid", "lk"),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK_STATUS(fieldreport_config_set_apptentive_max_record_bytes(cfg, 4096),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK_STATUS(fieldreport_config_set_apptentive_types(cfg, "bug", "crash"),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK_OK(fieldreport_config_set_app(cfg, "FFI Test", "1.0", NULL));
    CHECK_OK(fieldreport_config_set_policy(cfg, FIELDREPORT_POLICY_DURABILITY, 1));
    fieldreport_config_free(cfg);
    free(outbox);
}

static void test_abc_delivery(void) {
    fieldreport_config *cfg = NULL;
    fieldreport_client *c = NULL;
    fieldreport_feedback *fb = NULL;
    fieldreport_crash *crash = NULL;
    fieldreport_flush_result *result = NULL;
    fieldreport_report_state state;
    char *outbox = join(g_dir, "abc");
    char summary[128];
    char *state_json;
    int64_t id = 0, crash_id = 0;
    size_t i;
    int delivered = 0;
    const char *issues[2] = {"ffi", "c"};

    snprintf(summary, sizeof summary, "ABC from C (pid %ld)", (long)getpid());
    CHECK_OK(fieldreport_config_new_abc(outbox, g_abc_url, "1", "1", SANDBOX_KEY, &cfg));
    CHECK_OK(fieldreport_config_set_abc_field(cfg, "description", "description"));
    CHECK_OK(fieldreport_config_set_abc_field(cfg, "submitter", "submitter"));
    CHECK_OK(fieldreport_config_set_abc_field(cfg, "crash_log", "crash_log"));
    CHECK_OK(fieldreport_config_set_abc_field(cfg, "client_id", "client_id"));
    CHECK_OK(fieldreport_config_set_abc_field(cfg, "images", "images"));
    CHECK_OK(fieldreport_config_set_abc_field(cfg, "context.device.os_name", "os"));
    CHECK_OK(fieldreport_config_set_abc_issue_names(cfg, issues, 2));
    CHECK_OK(fieldreport_config_set_app(cfg, "FFI Test", "1.0", NULL));
    CHECK_OK(fieldreport_config_set_policy(cfg, FIELDREPORT_POLICY_DURABILITY, 1));
    CHECK_OK(fieldreport_client_open(cfg, &c));
    fieldreport_config_free(cfg);
    free(outbox);
    if (!c) return;

    CHECK_OK(fieldreport_feedback_new(summary, &fb));
    CHECK_OK(fieldreport_feedback_set_description(fb, "Sent through the C ABI to ABC."));
    CHECK_OK(fieldreport_feedback_set_submitter(fb, "c@example.com"));
    CHECK_OK(fieldreport_feedback_attach_bytes(fb, "screenshot", "shot.png", PNG, sizeof PNG, NULL));
    CHECK_OK(fieldreport_client_submit(c, fb, &id));
    fieldreport_feedback_free(fb);
    CHECK_OK(fieldreport_crash_new_text("SIGSEGV in abc_test()\n#0 0xdead\n", &crash));
    CHECK_OK(fieldreport_client_submit_crash(c, crash, &crash_id));
    fieldreport_crash_free(crash);

    CHECK_OK(fieldreport_client_flush(c, 60000, &result));
    CHECK(result != NULL);
    CHECK(fieldreport_flush_result_receipt_count(result) == 2);
    CHECK(fieldreport_flush_result_pending(result) == 0);
    CHECK(fieldreport_flush_result_dead(result) == 0);
    CHECK(fieldreport_flush_result_stopped(result) == NULL);
    for (i = 0; i < fieldreport_flush_result_receipt_count(result); i++) {
        const fieldreport_receipt *r = fieldreport_flush_result_receipt(result, i);
        if (r && (int)r->state == FIELDREPORT_REPORT_STATE_DELIVERED && r->server_key &&
            r->server_key[0] != '\0' && r->error == NULL && r->rejected_count == 0)
            delivered++;
    }
    CHECK(delivered == 2);
    fieldreport_flush_result_free(result);
    CHECK_OK(fieldreport_client_report_state(c, id, &state));
    CHECK((int)state == FIELDREPORT_REPORT_STATE_DELIVERED);
    CHECK_OK(fieldreport_client_report_state(c, crash_id, &state));
    CHECK((int)state == FIELDREPORT_REPORT_STATE_DELIVERED);

    /* The ABC sandbox holds the feedback, with the mapped fields. */
    state_json = http_to(g_abc_port, "GET", "/_sandbox/state", NULL);
    CHECK(state_json != NULL);
    CHECK(state_json && strstr(state_json, summary) != NULL);
    CHECK(state_json && strstr(state_json, "c@example.com") != NULL);
    CHECK(state_json && strstr(state_json, "SIGSEGV in abc_test()") != NULL);
    free(state_json);
    fieldreport_client_free(c);
}

static void test_apptentive_config(void) {
    fieldreport_config *cfg = (fieldreport_config *)&g_passed; /* garbage, must be reset */
    char *outbox = join(g_dir, "apptentive-config");

    CHECK_STATUS(fieldreport_config_new_apptentive(NULL, "https://api.apptentive.com", "t", &cfg),
                 FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK(cfg == NULL);
    CHECK_STATUS(fieldreport_config_new_apptentive(outbox, NULL, "t", &cfg),
                 FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_config_new_apptentive(outbox, "https://api.apptentive.com", NULL, &cfg),
                 FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_config_new_apptentive(outbox, "https://api.apptentive.com", "t", NULL),
                 FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_config_new_apptentive(outbox, "https://api.apptentive.com", "", &cfg),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK(cfg == NULL && strstr(last_error(), "token: is empty") != NULL);
    CHECK_STATUS(fieldreport_config_new_apptentive(outbox, "ftp://h", "tok-1", &cfg),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK(cfg == NULL && strstr(last_error(), "base_url") != NULL);

    CHECK_OK(fieldreport_config_new_apptentive(outbox, "https://api.apptentive.com", "tok-1", &cfg));
    CHECK_STATUS(fieldreport_config_set_apptentive_max_record_bytes(NULL, 4096),
                 FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_config_set_apptentive_max_record_bytes(cfg, 10),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK(strstr(last_error(), "max_record_bytes: must be at least 1024") != NULL);
    CHECK_OK(fieldreport_config_set_apptentive_max_record_bytes(cfg, 4096));
    CHECK_STATUS(fieldreport_config_set_apptentive_types(cfg, "bug", NULL),
                 FIELDREPORT_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(fieldreport_config_set_apptentive_types(cfg, "bug", " "),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK_OK(fieldreport_config_set_apptentive_types(cfg, "bug", "crash"));
    CHECK_STATUS(fieldreport_config_set_abc_field(cfg, "description", "d"),
                 FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK(strstr(last_error(), "delivers to apptentive") != NULL);
    CHECK_STATUS(fieldreport_config_set_base_url(cfg, "https://x"), FIELDREPORT_STATUS_INVALID_CONFIG);
    CHECK_OK(fieldreport_config_set_consent_default(cfg, false));
    fieldreport_config_free(cfg);
    free(outbox);
}

int main(void) {
    recorder rec;
    fieldreport_client *c;
    char *outbox;
    char *answer;

    g_url = getenv("FIELDREPORT_SANDBOX_URL");
    g_dir = getenv("FIELDREPORT_TEST_DIR");
    g_abc_url = getenv("FIELDREPORT_ABC_SANDBOX_URL");
    if (!g_url || !g_dir || sscanf(g_url, "http://127.0.0.1:%d/", &g_port) != 1 || !g_abc_url ||
        sscanf(g_abc_url, "http://127.0.0.1:%d", &g_abc_port) != 1) {
        fprintf(stderr, "set FIELDREPORT_SANDBOX_URL (http://127.0.0.1:N/api/v1), "
                        "FIELDREPORT_ABC_SANDBOX_URL (http://127.0.0.1:N) and FIELDREPORT_TEST_DIR\n");
        return 2;
    }
    /* Several clients share one sandbox: lift its rate limit so that a 429
     * never makes a test wait. */
    answer = http("POST", "/_sandbox/config", "{\"rate_limit_per_sec\":null}");
    if (!answer) {
        fprintf(stderr, "the sandbox at %s does not answer\n", g_url);
        return 2;
    }
    free(answer);

    memset(&rec, 0, sizeof rec);
    pthread_mutex_init(&rec.mu, NULL);
    rec.main_thread = pthread_self();

    test_library_functions();
    test_config();

    outbox = join(g_dir, "main");
    c = open_client("main");
    if (c) {
        test_happy_path(c, &rec);
        test_bad_inputs(c, outbox);
        test_submit_many(c, outbox);
        test_progress(c, &rec);
        test_dead_and_retry(c, &rec);
        test_consent_and_offline(c);
        test_auth_pause_and_redaction(c, &rec);
        test_callback_rules(c, &rec);
        test_background_sender(c, &rec);
        test_close(c);
        fieldreport_client_free(c);
    }
    test_limits();
    test_abc_config();
    test_abc_delivery();
    test_apptentive_config();
    free(outbox);
    pthread_mutex_destroy(&rec.mu);

    printf("test_ffi: %d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
