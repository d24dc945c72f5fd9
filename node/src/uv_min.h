/* uv_min.h - the libuv functions the addon calls, declared by hand.
 *
 * Node exports libuv from its executable, and Node-API gives the loop
 * (napi_get_uv_event_loop) but no headers for it: node-api-headers carries
 * node_api.h only.  libuv keeps its ABI stable within major version 1
 * (every Node since 0.12), so the addon declares what it uses and treats
 * every handle as opaque: its size comes from uv_handle_size() at run time
 * and its user pointer through uv_handle_{get,set}_data (libuv >= 1.19,
 * Node >= 10).  The enum values below are part of that stable ABI
 * (uv.h: UV_HANDLE_TYPE_MAP's 6th entry is IDLE, 8th POLL, 9th PREPARE;
 * UV_READABLE = 1).
 */
#ifndef MLK_NODE_UV_MIN_H
#define MLK_NODE_UV_MIN_H

#include <stddef.h>

extern "C" {
typedef struct uv_loop_s uv_loop_t;
typedef struct uv_handle_s uv_handle_t;
typedef struct uv_poll_s uv_poll_t;
typedef void (*uv_poll_cb)(uv_poll_t *handle, int status, int events);
typedef void (*uv_close_cb)(uv_handle_t *handle);

size_t uv_handle_size(int type);
int uv_poll_init(uv_loop_t *loop, uv_poll_t *handle, int fd);
int uv_poll_start(uv_poll_t *handle, int events, uv_poll_cb cb);
int uv_poll_stop(uv_poll_t *handle);
void uv_close(uv_handle_t *handle, uv_close_cb close_cb);
void uv_ref(uv_handle_t *handle);
void uv_unref(uv_handle_t *handle);
void *uv_handle_get_data(const uv_handle_t *handle);
void uv_handle_set_data(uv_handle_t *handle, void *data);

/* the spin before the loop sleeps (glue_client.cc SpinArm) */
typedef struct uv_prepare_s uv_prepare_t;
typedef struct uv_idle_s uv_idle_t;
typedef void (*uv_prepare_cb)(uv_prepare_t *handle);
typedef void (*uv_idle_cb)(uv_idle_t *handle);
int uv_prepare_init(uv_loop_t *loop, uv_prepare_t *handle);
int uv_prepare_start(uv_prepare_t *handle, uv_prepare_cb cb);
int uv_prepare_stop(uv_prepare_t *handle);
int uv_idle_init(uv_loop_t *loop, uv_idle_t *handle);
int uv_idle_start(uv_idle_t *handle, uv_idle_cb cb);
int uv_idle_stop(uv_idle_t *handle);
unsigned long long uv_hrtime(void);
}

/* UV_HANDLE_TYPE_MAP: IDLE is the 6th entry, POLL the 8th, PREPARE the 9th */
enum { MLK_UV_IDLE = 6, MLK_UV_POLL = 8, MLK_UV_PREPARE = 9, MLK_UV_READABLE = 1 };

#endif
