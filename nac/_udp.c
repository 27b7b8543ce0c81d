/* nac._udp: batched, non-blocking UDP receive and send for the server's IPv4 listeners.
 *
 * recv_batch() drains up to ``limit`` datagrams with recvmmsg(2), send_batch() sends many
 * replies with sendmmsg(2); both use MSG_DONTWAIT and so never block, which lets them keep the
 * GIL.  socket.recvfrom() releases and retakes the GIL for every datagram, and allocates a
 * buffer of the full receive size that it then shrinks; under load, with the history threads
 * waiting for the GIL, every datagram was a hand-off.  Same results as a loop of
 * sock.recvfrom(size) / sock.sendto(data, addr): (data, (host, port)) pairs, data cut to
 * ``size`` octets.  Optional like nac._speedups: without it the server uses the socket
 * methods (server.py); IPv6 listeners always do.
 */

#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

/* Datagrams per recvmmsg/sendmmsg call; the receive buffers are CHUNK x size. */
#define CHUNK 64
#define MAX_SIZE 65536

/* The last call's receive buffers, kept for the next one.  A call takes them (the pointer
 * goes back to NULL) and gives them back when it returns: Python code that runs inside a call
 * (a finalizer, a signal handler) and calls recv_batch again gets buffers of its own, never
 * the ones the outer call is still filling. */
static unsigned char *spare = NULL;
static size_t spare_size = 0;

static unsigned char *
take_buffers(size_t size)
{
    unsigned char *mine = spare;
    spare = NULL;
    if (mine != NULL && spare_size == size) {
        return mine;
    }
    PyMem_RawFree(mine); /* another size: the caller's changed */
    mine = PyMem_RawMalloc(size);
    if (mine == NULL) {
        PyErr_NoMemory();
    }
    return mine;
}

static void
give_back_buffers(unsigned char *mine, size_t size)
{
    if (spare == NULL) {
        spare = mine;
        spare_size = size;
    }
    else {
        PyMem_RawFree(mine);
    }
}

/* The source address tuples of the last senders: a NAS sends from one address and port,
 * so most datagrams reuse a tuple instead of formatting the address again. */
#define ADDR_CACHE 64
static struct {
    uint32_t addr;
    uint16_t port;
    PyObject *tuple;
} addr_cache[ADDR_CACHE];

static int
as_fd(PyObject *obj)
{
    long fd = PyLong_AsLong(obj);
    if (fd == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (fd < 0 || fd > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "not a file descriptor");
        return -1;
    }
    return (int)fd;
}

static PyObject *
address(const struct sockaddr_in *sin)
{
    uint32_t addr = sin->sin_addr.s_addr;
    uint16_t port = sin->sin_port;
    unsigned slot = (addr ^ (addr >> 16) ^ port ^ ((unsigned)port >> 7)) % ADDR_CACHE;
    if (addr_cache[slot].tuple != NULL && addr_cache[slot].addr == addr && addr_cache[slot].port == port) {
        return Py_NewRef(addr_cache[slot].tuple);
    }
    char text[INET_ADDRSTRLEN];
    if (inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text) == NULL) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *tuple = Py_BuildValue("(si)", text, (int)ntohs(port));
    if (tuple == NULL) {
        return NULL;
    }
    Py_XSETREF(addr_cache[slot].tuple, Py_NewRef(tuple));
    addr_cache[slot].addr = addr;
    addr_cache[slot].port = port;
    return tuple;
}

/* recv_batch(fd, limit, size) -> list[(bytes, (host, port))]
 * Up to ``limit`` datagrams waiting on an AF_INET socket, each cut to ``size`` octets; an
 * empty list when none is waiting.  An error (an ICMP error queued on the socket, say) with
 * nothing received yet raises OSError, as recvfrom does; after some datagrams it ends the
 * batch and the next call raises it. */
static PyObject *
recv_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "recv_batch(fd, limit, size)");
        return NULL;
    }
    int fd = as_fd(args[0]);
    if (fd < 0) {
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[1]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[2]);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size < 1 || size > MAX_SIZE || limit < 0) {
        PyErr_SetString(PyExc_ValueError, "size must be 1..65536 and limit positive");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    size_t buffers_size = (size_t)CHUNK * (size_t)size;
    unsigned char *buffers = take_buffers(buffers_size);
    if (buffers == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    struct mmsghdr msgs[CHUNK];
    struct iovec iov[CHUNK];
    struct sockaddr_in from[CHUNK];
    Py_ssize_t got = 0;
    while (got < limit) {
        unsigned want = (unsigned)(limit - got < CHUNK ? limit - got : CHUNK);
        for (unsigned i = 0; i < want; i++) {
            iov[i].iov_base = buffers + (size_t)i * (size_t)size;
            iov[i].iov_len = (size_t)size;
            memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
            msgs[i].msg_hdr.msg_name = &from[i];
            msgs[i].msg_hdr.msg_namelen = sizeof from[i];
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, msgs, want, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR) {
                if (PyErr_CheckSignals() < 0) {
                    goto error;
                }
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK || got > 0) {
                break;
            }
            PyErr_SetFromErrno(PyExc_OSError);
            goto error;
        }
        for (int i = 0; i < n; i++) {
            if (msgs[i].msg_hdr.msg_namelen < sizeof(struct sockaddr_in) || from[i].sin_family != AF_INET) {
                PyErr_SetString(PyExc_OSError, "recv_batch: not an AF_INET socket");
                goto error;
            }
            /* The kernel cuts a datagram to iov_len; the bound is kept here all the same. */
            size_t len = msgs[i].msg_len < (size_t)size ? msgs[i].msg_len : (size_t)size;
            PyObject *data = PyBytes_FromStringAndSize((const char *)iov[i].iov_base, (Py_ssize_t)len);
            PyObject *addr = data != NULL ? address(&from[i]) : NULL;
            PyObject *pair = addr != NULL ? PyTuple_Pack(2, data, addr) : NULL;
            Py_XDECREF(data);
            Py_XDECREF(addr);
            if (pair == NULL || PyList_Append(out, pair) < 0) {
                Py_XDECREF(pair);
                goto error;
            }
            Py_DECREF(pair);
        }
        got += n;
        if ((unsigned)n < want) {
            break; /* the queue is empty */
        }
    }
    give_back_buffers(buffers, buffers_size);
    return out;
error:
    give_back_buffers(buffers, buffers_size);
    Py_DECREF(out);
    return NULL;
}

static int
parse_address(PyObject *addr, struct sockaddr_in *sin)
{
    const char *host;
    int port;
    if (!PyTuple_Check(addr) || !PyArg_ParseTuple(addr, "si", &host, &port)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "an address is a (host, port) tuple");
        }
        return -1;
    }
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_OverflowError, "port must be 0-65535");
        return -1;
    }
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
        PyErr_Format(PyExc_OSError, "not an IPv4 address: %s", host);
        return -1;
    }
    return 0;
}

/* send_batch(fd, replies: list[(bytes, (host, port))]) -> list[(index, errno)]
 * Sends every reply that the kernel takes; the ones it refuses (a full send buffer: EAGAIN,
 * an unreachable address...) are returned by their index with the errno, and the others
 * are still sent.  It sends the replies that the list held when called: it works on a tuple
 * copy, so Python code run on the way (a port's __index__, a collection's finalizer) can
 * change or empty the list without freeing a reply that is being sent. */
static PyObject *
send_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "send_batch(fd, replies: list)");
        return NULL;
    }
    int fd = as_fd(args[0]);
    if (fd < 0) {
        return NULL;
    }
    PyObject *replies = PyList_AsTuple(args[1]);
    if (replies == NULL) {
        return NULL;
    }
    Py_ssize_t total = PyTuple_GET_SIZE(replies);
    PyObject *failed = PyList_New(0);
    if (failed == NULL) {
        Py_DECREF(replies);
        return NULL;
    }
    struct mmsghdr msgs[CHUNK];
    struct iovec iov[CHUNK];
    struct sockaddr_in to[CHUNK];
    Py_buffer views[CHUNK];
    for (Py_ssize_t start = 0; start < total;) {
        unsigned count = (unsigned)(total - start < CHUNK ? total - start : CHUNK);
        unsigned ready = 0;
        for (; ready < count; ready++) {
            PyObject *item = PyTuple_GET_ITEM(replies, start + (Py_ssize_t)ready);
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
                PyErr_SetString(PyExc_TypeError, "each reply is a (data, (host, port)) tuple");
                break;
            }
            if (parse_address(PyTuple_GET_ITEM(item, 1), &to[ready]) < 0) {
                break;
            }
            if (PyObject_GetBuffer(PyTuple_GET_ITEM(item, 0), &views[ready], PyBUF_SIMPLE) < 0) {
                break;
            }
            iov[ready].iov_base = views[ready].buf;
            iov[ready].iov_len = (size_t)views[ready].len;
            memset(&msgs[ready].msg_hdr, 0, sizeof msgs[ready].msg_hdr);
            msgs[ready].msg_hdr.msg_name = &to[ready];
            msgs[ready].msg_hdr.msg_namelen = sizeof to[ready];
            msgs[ready].msg_hdr.msg_iov = &iov[ready];
            msgs[ready].msg_hdr.msg_iovlen = 1;
        }
        int error = ready < count; /* a malformed item: release what was taken, then raise */
        unsigned sent = 0;
        while (!error && sent < ready) {
            int n = sendmmsg(fd, msgs + sent, ready - sent, MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                /* This message failed: note it and go on with the next one. */
                PyObject *entry = Py_BuildValue("(ni)", start + (Py_ssize_t)sent, errno);
                if (entry == NULL || PyList_Append(failed, entry) < 0) {
                    Py_XDECREF(entry);
                    error = 1;
                    break;
                }
                Py_DECREF(entry);
                sent++;
                continue;
            }
            sent += (unsigned)n;
        }
        for (unsigned i = 0; i < ready; i++) {
            PyBuffer_Release(&views[i]);
        }
        if (error) {
            Py_DECREF(replies);
            Py_DECREF(failed);
            return NULL;
        }
        start += count;
    }
    Py_DECREF(replies);
    return failed;
}

static PyMethodDef methods[] = {
    {"recv_batch", (PyCFunction)(void (*)(void))recv_batch, METH_FASTCALL,
     "recv_batch(fd, limit, size) -> list[(data, (host, port))] from an AF_INET socket."},
    {"send_batch", (PyCFunction)(void (*)(void))send_batch, METH_FASTCALL,
     "send_batch(fd, replies) -> list[(index, errno)] of the replies not sent."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "nac._udp", "Batched non-blocking UDP for the server's IPv4 listeners.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__udp(void)
{
    return PyModule_Create(&module_def);
}
