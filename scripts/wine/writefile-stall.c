/*
 * The Wine behaviour behind moonport's stalled multi-megabyte streams
 * (docs/windows.md, "What Wine 8.0 lacks"), without moonport or compio.
 *
 * An overlapped socket on an I/O completion port sends `total` bytes in
 * `chunk`-sized operations, one at a time, while a thread drains the other
 * end with blocking recv(). Each operation that does not finish at once
 * (the socket buffer is full) is waited for on the port, for 5 seconds.
 *
 * Under Wine 8.0, with WriteFile the first operation that has to wait never
 * completes (its OVERLAPPED.Internal stays STATUS_PENDING, 0x103) although
 * the reader has drained everything; with WSASend every one completes. The
 * completion-mode flag (skip/noskip: FILE_SKIP_COMPLETION_PORT_ON_SUCCESS,
 * which compio sets) makes no difference. On Windows both calls work.
 *
 *   x86_64-w64-mingw32-gcc -O2 -o writefile-stall.exe writefile-stall.c -lws2_32
 *   scripts/wine/run writefile-stall.exe writefile|wsasend [skip|noskip] [total] [chunk]
 *
 * Exit status 1 and "STALL: ..." when a pending send never completes.
 */
#include <winsock2.h>
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static SOCKET peer;
static volatile LONGLONG received;

static DWORD WINAPI drain(LPVOID arg)
{
    static char buf[65536];
    int n;
    (void)arg;
    while ((n = recv(peer, buf, sizeof buf, 0)) > 0)
        received += n;
    return 0;
}

int main(int argc, char **argv)
{
    int wsasend = argc > 1 && !strcmp(argv[1], "wsasend");
    int skip = argc <= 2 || !strcmp(argv[2], "skip");
    long long total = argc > 3 ? atoll(argv[3]) : 16LL << 20;
    DWORD chunk = argc > 4 ? (DWORD)atol(argv[4]) : 65536;
    WSADATA wsa;
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int addr_len = sizeof addr;
    long long sent = 0;
    int at_once = 0, waited = 0;

    WSAStartup(MAKEWORD(2, 2), &wsa);
    SOCKET listener = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    bind(listener, (struct sockaddr *)&addr, sizeof addr);
    listen(listener, 1);
    getsockname(listener, (struct sockaddr *)&addr, &addr_len);
    SOCKET s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (connect(s, (struct sockaddr *)&addr, sizeof addr)) {
        printf("connect failed: %d\n", WSAGetLastError());
        return 2;
    }
    peer = accept(listener, NULL, NULL);
    CreateThread(NULL, 0, drain, NULL, 0, NULL);

    HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    CreateIoCompletionPort((HANDLE)s, port, 0, 0);
    if (skip && !SetFileCompletionNotificationModes((HANDLE)s, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS))
        printf("SetFileCompletionNotificationModes failed: %lu\n", GetLastError());

    char *data = malloc(chunk);
    memset(data, 'x', chunk);
    while (sent < total) {
        OVERLAPPED ov;
        DWORD n = 0, bytes;
        ULONG_PTR key;
        LPOVERLAPPED done;
        BOOL ok;
        DWORD err;

        memset(&ov, 0, sizeof ov);
        if (wsasend) {
            WSABUF b = { chunk, data };
            ok = WSASend(s, &b, 1, &n, 0, &ov, NULL) == 0;
            err = ok ? 0 : (DWORD)WSAGetLastError();
        } else {
            ok = WriteFile((HANDLE)s, data, chunk, &n, &ov);
            err = ok ? 0 : GetLastError();
        }
        if (!ok && err != ERROR_IO_PENDING) {
            printf("send failed: %lu\n", err);
            return 2;
        }
        if (ok) at_once++;
        else waited++;
        /* Done at once: with the skip flag no completion is queued. */
        if (ok && skip) {
            sent += n;
            continue;
        }
        if (!GetQueuedCompletionStatus(port, &bytes, &key, &done, 5000)) {
            printf("STALL: a pending %s got no completion in 5 s (error %lu); sent %lld, "
                   "peer received %lld, OVERLAPPED.Internal %#lx\n",
                   wsasend ? "WSASend" : "WriteFile", GetLastError(), sent, (long long)received,
                   (unsigned long)ov.Internal);
            return 1;
        }
        sent += bytes;
    }
    Sleep(200);
    printf("ok: %s sent %lld bytes (%d done at once, %d waited for); peer received %lld\n",
           wsasend ? "WSASend" : "WriteFile", sent, at_once, waited, (long long)received);
    return 0;
}
