/*
 * fieldreport from C: open a client, submit feedback with a screenshot,
 * submit a crash log, deliver, print the receipts, free everything.
 *
 * Build (from the repository root, after `bindings/c/build.sh`, which
 * builds the library and its pkg-config files; bindings/c/README.md):
 *
 *   export PKG_CONFIG_PATH="${CARGO_TARGET_DIR:-$PWD/target}/release/pkgconfig"
 *   cc -std=c11 -Wall -Wextra examples/c/example.c \
 *      $(pkg-config --cflags --libs fieldreport-static) -o example
 *
 * Run against a local sandbox (`fieldreport sandbox --port 8480`):
 *
 *   ./example http://127.0.0.1:8480/api/v1 /tmp/example-outbox
 *
 * A real app gives its Centercode company with fieldreport_config_set_company()
 * instead of a base URL, and keeps its outbox in its data directory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fieldreport.h"

/* Prints what went wrong in the last call and returns 1: error handling in
 * one line at each call site. */
static int fail(const char *what, fieldreport_status status) {
    char message[512];
    fieldreport_last_error(message, sizeof message); /* cut to fit if longer */
    fprintf(stderr, "%s failed: %s (%s)\n", what, message,
            fieldreport_status_name((int32_t)status));
    return 1;
}

/* Called on the thread that delivers: here, the one calling flush. The event
 * and its strings are only valid during the call. */
static void on_event(void *user_data, const fieldreport_event *event) {
    int *delivered = (int *)user_data;
    if (event->kind == FIELDREPORT_EVENT_KIND_DELIVERED) {
        (*delivered)++;
    } else if (event->message) {
        fprintf(stderr, "report %lld: %s\n", (long long)event->report_id, event->message);
    }
}

/* The screenshot an app would have captured; a 1x1 PNG here. */
static int write_screenshot(const char *path) {
    static const unsigned char png[] = {
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48,
        0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00,
        0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78,
        0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0, 0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99,
        0x3D, 0x1D, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    };
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fwrite(png, 1, sizeof png, f);
    return fclose(f);
}

int main(int argc, char **argv) {
    const char *base_url = argc > 1 ? argv[1] : "http://127.0.0.1:8480/api/v1";
    const char *outbox = argc > 2 ? argv[2] : "example-outbox";
    const char *screenshot = "example-screenshot.png";
    fieldreport_config *config = NULL;
    fieldreport_client *client = NULL;
    fieldreport_feedback *feedback = NULL;
    fieldreport_crash *crash = NULL;
    fieldreport_flush_result *result = NULL;
    fieldreport_status st;
    int64_t feedback_id = 0, crash_id = 0;
    int delivered = 0, rc = 1;
    size_t i;

    printf("fieldreport %s\n", fieldreport_version());
    if (write_screenshot(screenshot) != 0) {
        perror(screenshot);
        return 1;
    }

    /* 1. Configure and open. The config may be freed right after open. */
    st = fieldreport_config_new(outbox, "WidgetPro", "Mobile", "sandbox-key", &config);
    if (st != FIELDREPORT_STATUS_OK) return fail("fieldreport_config_new", st);
    fieldreport_config_set_base_url(config, base_url);
    fieldreport_config_set_app(config, "WidgetPro Desktop", "2.3.1", "4512");
    st = fieldreport_client_open(config, &client);
    fieldreport_config_free(config);
    if (st != FIELDREPORT_STATUS_OK) return fail("fieldreport_client_open", st);
    fieldreport_client_set_callback(client, on_event, &delivered);

    /* 2. Feedback with a screenshot. Submit copies the file into the outbox
     *    and returns once the report is on disk; no network yet. */
    st = fieldreport_feedback_new("Lighting presets should be more robust", &feedback);
    if (st != FIELDREPORT_STATUS_OK) goto failed_feedback;
    fieldreport_feedback_set_description(feedback, "I wish the app had more lighting presets.");
    fieldreport_feedback_set_submitter(feedback, "jim@example.com");
    fieldreport_feedback_set_field_int(feedback, "topic", 23795);
    fieldreport_feedback_attach_file(feedback, "Screenshot", screenshot, NULL, NULL);
    st = fieldreport_client_submit(client, feedback, &feedback_id);
    if (st != FIELDREPORT_STATUS_OK) goto failed_feedback;
    printf("queued feedback #%lld\n", (long long)feedback_id);

    /* 3. A crash log, e.g. found at the next start after a crash. */
    st = fieldreport_crash_new_text("Segmentation fault in render_frame()\n#0 0x4005d4 render_frame\n",
                                    &crash);
    if (st != FIELDREPORT_STATUS_OK) goto failed_crash;
    st = fieldreport_client_submit_crash(client, crash, &crash_id);
    if (st != FIELDREPORT_STATUS_OK) goto failed_crash;
    printf("queued crash #%lld\n", (long long)crash_id);

    /* 4. Deliver (blocks on the network; a desktop app does this on a worker
     *    thread, or calls fieldreport_client_start_sender() once instead). */
    st = fieldreport_client_flush(client, 30000, &result);
    if (st != FIELDREPORT_STATUS_OK) {
        rc = fail("fieldreport_client_flush", st);
        goto done;
    }
    for (i = 0; i < fieldreport_flush_result_receipt_count(result); i++) {
        const fieldreport_receipt *r = fieldreport_flush_result_receipt(result, i);
        printf("report #%lld -> %s %s%s\n", (long long)r->id,
               r->state == FIELDREPORT_REPORT_STATE_DELIVERED ? "delivered" : "not delivered",
               r->server_key ? r->server_key : "", r->error ? r->error : "");
    }
    if (fieldreport_flush_result_stopped(result))
        printf("stopped early: %s\n", fieldreport_flush_result_stopped(result));
    printf("%d delivered, %llu still waiting\n", delivered,
           (unsigned long long)fieldreport_flush_result_pending(result));
    rc = delivered == 2 ? 0 : 1;
    goto done;

failed_feedback:
    rc = fail("submitting feedback", st);
    goto done;
failed_crash:
    rc = fail("submitting the crash", st);
done:
    /* 5. Free everything; freeing NULL is fine. */
    fieldreport_flush_result_free(result);
    fieldreport_crash_free(crash);
    fieldreport_feedback_free(feedback);
    fieldreport_client_free(client);
    remove(screenshot);
    return rc;
}
