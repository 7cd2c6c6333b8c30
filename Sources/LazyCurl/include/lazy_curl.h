#ifndef LAZY_CURL_H
#define LAZY_CURL_H

/// Loads libcurl now (it is otherwise loaded on first use) and reports whether it could be.
/// On Linux the server's executable does not link libcurl: FoundationNetworking's calls into
/// it land in this target, which loads `libcurl.so.4` with dlopen the first time, so the ~30
/// shared libraries libcurl pulls in are not loaded before the process can answer MCP.
/// Returns 1 when libcurl is loaded, 0 (with the reason in `lazy_curl_error()`) when not.
int lazy_curl_load(void);

/// Why libcurl could not be loaded, or NULL.
const char *lazy_curl_error(void);

#endif
