# poll(2), which Cython's posix/ declarations lack: the engine's readers sleep in it, and the
# AF_PACKET ring asks it whether a socket has an error pending.
cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd* fds, unsigned long nfds, int timeout)
    short POLLIN, POLLERR
