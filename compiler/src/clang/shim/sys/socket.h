/* qosc: freestanding stand-in for the C library's <sys/socket.h>.
 * BPF programs have no libc, but <linux/if.h> (pulled in by <linux/icmp.h>)
 * includes <sys/socket.h> for struct sockaddr only. This provides exactly
 * that, on top of the kernel UAPI types, so no glibc header is needed. */
#ifndef QOSC_SHIM_SYS_SOCKET_H
#define QOSC_SHIM_SYS_SOCKET_H

#include <linux/socket.h>

struct sockaddr {
	__kernel_sa_family_t sa_family;
	char sa_data[14];
};

#endif
