/*
 * A stand-in bcryptprimitives.dll for Wine 8.0, which lacks it.
 *
 * Rust's std (1.78 and later) imports ProcessPrng from bcryptprimitives.dll to
 * seed HashMap keys; without the DLL every Rust .exe fails to start under
 * Wine 8.0 with STATUS_DLL_NOT_FOUND (c0000135). This DLL exports that one
 * function, implemented with RtlGenRandom (advapi32's SystemFunction036),
 * which Wine has. scripts/windows-test builds it with mingw-w64 and copies it
 * into the test Wine prefix's system32; it is never shipped with moonport.
 *
 * Windows documents ProcessPrng as: BOOL WINAPI ProcessPrng(PBYTE, SIZE_T),
 * always returning TRUE. RtlGenRandom takes a ULONG length, so large requests
 * are split.
 */
#include <windows.h>

/* advapi32!SystemFunction036, better known as RtlGenRandom. */
__declspec(dllimport) BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk)) {
            /* Real ProcessPrng cannot fail; neither may callers expect it to. */
            FatalAppExitA(0, "ProcessPrng: RtlGenRandom failed");
        }
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}
