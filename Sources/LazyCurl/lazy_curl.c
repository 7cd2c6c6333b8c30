// FoundationNetworking's URLSession calls these libcurl functions (the set its static archives
// leave undefined: nm -u lib_CFURLSessionInterface.a libFoundationNetworking.a). Each forwards
// to the real function of libcurl.so.4, loaded once with dlopen on first use, so a process that
// never makes an HTTP request never loads libcurl and its ~30 dependencies. See Docs/benchmarks.md.
#if defined(__linux__)
// libcurl's own header is not included: its prototypes differ between versions in `const`
// only, and these definitions must compile against any. The types below are libcurl's ABI
// (opaque handles, C enums as int, curl_off_t as a 64-bit integer, curl_socket_t as int).
#include <dlfcn.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "lazy_curl.h"

typedef void CURL;
typedef void CURLM;
typedef void CURLU;
typedef void CURLMsg;
typedef void curl_version_info_data;
struct curl_slist;
typedef int CURLcode;
typedef int CURLMcode;
typedef int CURLUcode;
typedef int CURLoption;
typedef int CURLMoption;
typedef int CURLINFO;
typedef int CURLUPart;
typedef int CURLversion;
typedef int curl_socket_t;
typedef int64_t curl_off_t;

// The option number ranges that name the type of setopt's one variadic argument (curl.h).
enum { CURLOPTTYPE_OBJECTPOINT = 10000, CURLOPTTYPE_OFF_T = 30000, CURLOPTTYPE_BLOB = 40000 };

#define LAZY_CURL_FUNCTIONS(X) \
    X(CURLcode, curl_global_init, (long flags)) \
    X(CURL *, curl_easy_init, (void)) \
    X(void, curl_easy_cleanup, (CURL *handle)) \
    X(CURLcode, curl_easy_pause, (CURL *handle, int bitmask)) \
    X(const char *, curl_easy_strerror, (CURLcode code)) \
    X(void, curl_free, (void *pointer)) \
    X(CURLM *, curl_multi_init, (void)) \
    X(CURLMcode, curl_multi_cleanup, (CURLM *multi)) \
    X(CURLMcode, curl_multi_add_handle, (CURLM *multi, CURL *handle)) \
    X(CURLMcode, curl_multi_remove_handle, (CURLM *multi, CURL *handle)) \
    X(CURLMcode, curl_multi_assign, (CURLM *multi, curl_socket_t socket, void *pointer)) \
    X(CURLMsg *, curl_multi_info_read, (CURLM *multi, int *queued)) \
    X(CURLMcode, curl_multi_socket_action, (CURLM *multi, curl_socket_t socket, int mask, int *running)) \
    X(struct curl_slist *, curl_slist_append, (struct curl_slist *list, const char *text)) \
    X(void, curl_slist_free_all, (struct curl_slist *list)) \
    X(CURLU *, curl_url, (void)) \
    X(CURLUcode, curl_url_get, (CURLU *url, CURLUPart part, char **value, unsigned int flags)) \
    X(CURLUcode, curl_url_set, (CURLU *url, CURLUPart part, const char *value, unsigned int flags)) \
    X(char *, curl_version, (void)) \
    X(curl_version_info_data *, curl_version_info, (CURLversion stamp)) \
    X(CURLcode, curl_easy_setopt, (CURL *handle, CURLoption option, ...)) \
    X(CURLcode, curl_easy_getinfo, (CURL *handle, CURLINFO info, ...)) \
    X(CURLMcode, curl_multi_setopt, (CURLM *multi, CURLMoption option, ...))

#define LAZY_CURL_POINTER(result, name, parameters) static result (*real_##name) parameters;
LAZY_CURL_FUNCTIONS(LAZY_CURL_POINTER)

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *failure;
static char failure_text[512];

static void load(void) {
    void *library = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(failure_text, sizeof failure_text, "libcurl.so.4 could not be loaded (%s); install libcurl (Debian/Ubuntu: apt-get install libcurl4)", dlerror());
        failure = failure_text;
        return;
    }
#define LAZY_CURL_RESOLVE(result, name, parameters) \
    real_##name = (result (*) parameters)dlsym(library, #name); \
    if (!real_##name) { snprintf(failure_text, sizeof failure_text, "libcurl.so.4 has no %s", #name); failure = failure_text; return; }
    LAZY_CURL_FUNCTIONS(LAZY_CURL_RESOLVE)
}

int lazy_curl_load(void) {
    pthread_once(&once, load);
    return failure == NULL;
}

const char *lazy_curl_error(void) {
    pthread_once(&once, load);
    return failure;
}

/// Every forwarder needs libcurl: without it no HTTP request can be made, so the process says
/// why and stops rather than pretend (the payments system loads it at start, so this happens
/// at start-up, not in the middle of a payment).
static void require(void) {
    if (lazy_curl_load()) return;
    static const char prefix[] = "agent-payments: ";
    (void)!write(2, prefix, sizeof prefix - 1);
    (void)!write(2, failure, strlen(failure));
    (void)!write(2, "\n", 1);
    abort();
}

CURLcode curl_global_init(long flags) { require(); return real_curl_global_init(flags); }
CURL *curl_easy_init(void) { require(); return real_curl_easy_init(); }
void curl_easy_cleanup(CURL *handle) { require(); real_curl_easy_cleanup(handle); }
CURLcode curl_easy_pause(CURL *handle, int bitmask) { require(); return real_curl_easy_pause(handle, bitmask); }
const char *curl_easy_strerror(CURLcode code) { require(); return real_curl_easy_strerror(code); }
void curl_free(void *pointer) { require(); real_curl_free(pointer); }
CURLM *curl_multi_init(void) { require(); return real_curl_multi_init(); }
CURLMcode curl_multi_cleanup(CURLM *multi) { require(); return real_curl_multi_cleanup(multi); }
CURLMcode curl_multi_add_handle(CURLM *multi, CURL *handle) { require(); return real_curl_multi_add_handle(multi, handle); }
CURLMcode curl_multi_remove_handle(CURLM *multi, CURL *handle) { require(); return real_curl_multi_remove_handle(multi, handle); }
CURLMcode curl_multi_assign(CURLM *multi, curl_socket_t socket, void *pointer) { require(); return real_curl_multi_assign(multi, socket, pointer); }
CURLMsg *curl_multi_info_read(CURLM *multi, int *queued) { require(); return real_curl_multi_info_read(multi, queued); }
CURLMcode curl_multi_socket_action(CURLM *multi, curl_socket_t socket, int mask, int *running) { require(); return real_curl_multi_socket_action(multi, socket, mask, running); }
struct curl_slist *curl_slist_append(struct curl_slist *list, const char *text) { require(); return real_curl_slist_append(list, text); }
void curl_slist_free_all(struct curl_slist *list) { require(); real_curl_slist_free_all(list); }
CURLU *curl_url(void) { require(); return real_curl_url(); }
CURLUcode curl_url_get(CURLU *url, CURLUPart part, char **value, unsigned int flags) { require(); return real_curl_url_get(url, part, value, flags); }
CURLUcode curl_url_set(CURLU *url, CURLUPart part, const char *value, unsigned int flags) { require(); return real_curl_url_set(url, part, value, flags); }
char *curl_version(void) { require(); return real_curl_version(); }
curl_version_info_data *curl_version_info(CURLversion stamp) { require(); return real_curl_version_info(stamp); }

// The variadic three take exactly one more argument, whose type the option's number range
// names (curl.h: CURLOPTTYPE_LONG 0, OBJECTPOINT 10000, FUNCTIONPOINT 20000, OFF_T 30000,
// BLOB 40000; CURLINFO values always take a pointer); it is read as that type and passed on.
#define LAZY_CURL_FORWARD_BY_TYPE(real, handle, option, arguments, result) \
    do { \
        if ((option) < CURLOPTTYPE_OBJECTPOINT) { \
            long value = va_arg(arguments, long); \
            result = real(handle, option, value); \
        } else if ((option) >= CURLOPTTYPE_OFF_T && (option) < CURLOPTTYPE_BLOB) { \
            curl_off_t value = va_arg(arguments, curl_off_t); \
            result = real(handle, option, value); \
        } else { \
            void *value = va_arg(arguments, void *); \
            result = real(handle, option, value); \
        } \
    } while (0)

CURLcode curl_easy_setopt(CURL *handle, CURLoption option, ...) {
    require();
    va_list arguments;
    va_start(arguments, option);
    CURLcode result;
    LAZY_CURL_FORWARD_BY_TYPE(real_curl_easy_setopt, handle, option, arguments, result);
    va_end(arguments);
    return result;
}

CURLcode curl_easy_getinfo(CURL *handle, CURLINFO info, ...) {
    require();
    va_list arguments;
    va_start(arguments, info);
    void *destination = va_arg(arguments, void *);
    va_end(arguments);
    return real_curl_easy_getinfo(handle, info, destination);
}

CURLMcode curl_multi_setopt(CURLM *multi, CURLMoption option, ...) {
    require();
    va_list arguments;
    va_start(arguments, option);
    CURLMcode result;
    LAZY_CURL_FORWARD_BY_TYPE(real_curl_multi_setopt, multi, option, arguments, result);
    va_end(arguments);
    return result;
}
#else
#include "lazy_curl.h"
#include <stddef.h>
// Elsewhere (macOS) URLSession is the system's own and libcurl is not involved.
int lazy_curl_load(void) { return 1; }
const char *lazy_curl_error(void) { return NULL; }
#endif
