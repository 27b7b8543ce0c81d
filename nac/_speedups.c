/* nac._speedups: the request path's byte work in C, for nac.packet, nac.crypto and nac.mac.
 *
 * Every function here has a pure-Python twin that stays the reference (packet.decode,
 * crypto.HmacMd5, crypto.hidden_password_is, packet.encode_reply, mac.try_parse_mac);
 * tests/test_speedups.py checks that both give the same answer, or the same PacketError,
 * for the same input, generated and mutated by hypothesis.  The module is optional: setup.py
 * builds it when a C compiler is there, and nac runs on the Python twins when it is not.
 *
 * Why C: a MAB decision in Python spends ~11 µs decoding the packet, hashing three MD5s
 * through hashlib's objects and parsing the MAC (bench/engine_bench.py); these functions do
 * the same in ~1.5 µs.  MD5 is our own (RFC 1321) rather than OpenSSL's so that the module
 * builds with nothing but the Python headers.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ---- MD5 (RFC 1321) ------------------------------------------------------------------ */

typedef struct {
    uint32_t s[4];
    uint64_t count; /* octets hashed so far */
    unsigned char buf[64];
} md5_ctx;

#define MD5_F(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define MD5_G(x, y, z) ((y) ^ ((z) & ((x) ^ (y))))
#define MD5_H(x, y, z) ((x) ^ (y) ^ (z))
#define MD5_I(x, y, z) ((y) ^ ((x) | ~(z)))
#define MD5_STEP(f, a, b, c, d, x, t, r) \
    (a) += f((b), (c), (d)) + (x) + (uint32_t)(t); \
    (a) = (((a) << (r)) | ((a) >> (32 - (r)))) + (b);

static inline uint32_t
load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline void
store_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void
md5_block(uint32_t s[4], const unsigned char *p)
{
    uint32_t x[16];
    for (int i = 0; i < 16; i++) {
        x[i] = load_le32(p + 4 * i);
    }
    uint32_t a = s[0], b = s[1], c = s[2], d = s[3];

    MD5_STEP(MD5_F, a, b, c, d, x[0], 0xd76aa478, 7)
    MD5_STEP(MD5_F, d, a, b, c, x[1], 0xe8c7b756, 12)
    MD5_STEP(MD5_F, c, d, a, b, x[2], 0x242070db, 17)
    MD5_STEP(MD5_F, b, c, d, a, x[3], 0xc1bdceee, 22)
    MD5_STEP(MD5_F, a, b, c, d, x[4], 0xf57c0faf, 7)
    MD5_STEP(MD5_F, d, a, b, c, x[5], 0x4787c62a, 12)
    MD5_STEP(MD5_F, c, d, a, b, x[6], 0xa8304613, 17)
    MD5_STEP(MD5_F, b, c, d, a, x[7], 0xfd469501, 22)
    MD5_STEP(MD5_F, a, b, c, d, x[8], 0x698098d8, 7)
    MD5_STEP(MD5_F, d, a, b, c, x[9], 0x8b44f7af, 12)
    MD5_STEP(MD5_F, c, d, a, b, x[10], 0xffff5bb1, 17)
    MD5_STEP(MD5_F, b, c, d, a, x[11], 0x895cd7be, 22)
    MD5_STEP(MD5_F, a, b, c, d, x[12], 0x6b901122, 7)
    MD5_STEP(MD5_F, d, a, b, c, x[13], 0xfd987193, 12)
    MD5_STEP(MD5_F, c, d, a, b, x[14], 0xa679438e, 17)
    MD5_STEP(MD5_F, b, c, d, a, x[15], 0x49b40821, 22)

    MD5_STEP(MD5_G, a, b, c, d, x[1], 0xf61e2562, 5)
    MD5_STEP(MD5_G, d, a, b, c, x[6], 0xc040b340, 9)
    MD5_STEP(MD5_G, c, d, a, b, x[11], 0x265e5a51, 14)
    MD5_STEP(MD5_G, b, c, d, a, x[0], 0xe9b6c7aa, 20)
    MD5_STEP(MD5_G, a, b, c, d, x[5], 0xd62f105d, 5)
    MD5_STEP(MD5_G, d, a, b, c, x[10], 0x02441453, 9)
    MD5_STEP(MD5_G, c, d, a, b, x[15], 0xd8a1e681, 14)
    MD5_STEP(MD5_G, b, c, d, a, x[4], 0xe7d3fbc8, 20)
    MD5_STEP(MD5_G, a, b, c, d, x[9], 0x21e1cde6, 5)
    MD5_STEP(MD5_G, d, a, b, c, x[14], 0xc33707d6, 9)
    MD5_STEP(MD5_G, c, d, a, b, x[3], 0xf4d50d87, 14)
    MD5_STEP(MD5_G, b, c, d, a, x[8], 0x455a14ed, 20)
    MD5_STEP(MD5_G, a, b, c, d, x[13], 0xa9e3e905, 5)
    MD5_STEP(MD5_G, d, a, b, c, x[2], 0xfcefa3f8, 9)
    MD5_STEP(MD5_G, c, d, a, b, x[7], 0x676f02d9, 14)
    MD5_STEP(MD5_G, b, c, d, a, x[12], 0x8d2a4c8a, 20)

    MD5_STEP(MD5_H, a, b, c, d, x[5], 0xfffa3942, 4)
    MD5_STEP(MD5_H, d, a, b, c, x[8], 0x8771f681, 11)
    MD5_STEP(MD5_H, c, d, a, b, x[11], 0x6d9d6122, 16)
    MD5_STEP(MD5_H, b, c, d, a, x[14], 0xfde5380c, 23)
    MD5_STEP(MD5_H, a, b, c, d, x[1], 0xa4beea44, 4)
    MD5_STEP(MD5_H, d, a, b, c, x[4], 0x4bdecfa9, 11)
    MD5_STEP(MD5_H, c, d, a, b, x[7], 0xf6bb4b60, 16)
    MD5_STEP(MD5_H, b, c, d, a, x[10], 0xbebfbc70, 23)
    MD5_STEP(MD5_H, a, b, c, d, x[13], 0x289b7ec6, 4)
    MD5_STEP(MD5_H, d, a, b, c, x[0], 0xeaa127fa, 11)
    MD5_STEP(MD5_H, c, d, a, b, x[3], 0xd4ef3085, 16)
    MD5_STEP(MD5_H, b, c, d, a, x[6], 0x04881d05, 23)
    MD5_STEP(MD5_H, a, b, c, d, x[9], 0xd9d4d039, 4)
    MD5_STEP(MD5_H, d, a, b, c, x[12], 0xe6db99e5, 11)
    MD5_STEP(MD5_H, c, d, a, b, x[15], 0x1fa27cf8, 16)
    MD5_STEP(MD5_H, b, c, d, a, x[2], 0xc4ac5665, 23)

    MD5_STEP(MD5_I, a, b, c, d, x[0], 0xf4292244, 6)
    MD5_STEP(MD5_I, d, a, b, c, x[7], 0x432aff97, 10)
    MD5_STEP(MD5_I, c, d, a, b, x[14], 0xab9423a7, 15)
    MD5_STEP(MD5_I, b, c, d, a, x[5], 0xfc93a039, 21)
    MD5_STEP(MD5_I, a, b, c, d, x[12], 0x655b59c3, 6)
    MD5_STEP(MD5_I, d, a, b, c, x[3], 0x8f0ccc92, 10)
    MD5_STEP(MD5_I, c, d, a, b, x[10], 0xffeff47d, 15)
    MD5_STEP(MD5_I, b, c, d, a, x[1], 0x85845dd1, 21)
    MD5_STEP(MD5_I, a, b, c, d, x[8], 0x6fa87e4f, 6)
    MD5_STEP(MD5_I, d, a, b, c, x[15], 0xfe2ce6e0, 10)
    MD5_STEP(MD5_I, c, d, a, b, x[6], 0xa3014314, 15)
    MD5_STEP(MD5_I, b, c, d, a, x[13], 0x4e0811a1, 21)
    MD5_STEP(MD5_I, a, b, c, d, x[4], 0xf7537e82, 6)
    MD5_STEP(MD5_I, d, a, b, c, x[11], 0xbd3af235, 10)
    MD5_STEP(MD5_I, c, d, a, b, x[2], 0x2ad7d2bb, 15)
    MD5_STEP(MD5_I, b, c, d, a, x[9], 0xeb86d391, 21)

    s[0] += a;
    s[1] += b;
    s[2] += c;
    s[3] += d;
}

static void
md5_init(md5_ctx *ctx)
{
    ctx->s[0] = 0x67452301;
    ctx->s[1] = 0xefcdab89;
    ctx->s[2] = 0x98badcfe;
    ctx->s[3] = 0x10325476;
    ctx->count = 0;
}

static void
md5_update(md5_ctx *ctx, const unsigned char *p, size_t n)
{
    size_t used = (size_t)(ctx->count & 63);
    ctx->count += n;
    if (used) {
        size_t room = 64 - used;
        if (n < room) {
            memcpy(ctx->buf + used, p, n);
            return;
        }
        memcpy(ctx->buf + used, p, room);
        md5_block(ctx->s, ctx->buf);
        p += room;
        n -= room;
    }
    while (n >= 64) {
        md5_block(ctx->s, p);
        p += 64;
        n -= 64;
    }
    if (n) {
        memcpy(ctx->buf, p, n);
    }
}

static const unsigned char ZEROS[64] = {0};

static void
md5_final(md5_ctx *ctx, unsigned char out[16])
{
    static const unsigned char pad[64] = {0x80};
    uint64_t bits = ctx->count * 8;
    size_t used = (size_t)(ctx->count & 63);
    md5_update(ctx, pad, used < 56 ? 56 - used : 120 - used);
    unsigned char len[8];
    store_le32(len, (uint32_t)bits);
    store_le32(len + 4, (uint32_t)(bits >> 32));
    md5_update(ctx, len, 8);
    for (int i = 0; i < 4; i++) {
        store_le32(out + 4 * i, ctx->s[i]);
    }
}

/* ---- HMAC-MD5 with precomputed pads (RFC 2104 §4) -------------------------------------- */

/* The pads are the MD5 state after the key XOR ipad block and after the key XOR opad block,
 * 2 x 4 words, kept by crypto.HmacMd5 as 32 octets (little-endian words). */
#define PADS_LEN 32

static void
pads_load(const unsigned char *pads, md5_ctx *inner, md5_ctx *outer)
{
    for (int i = 0; i < 4; i++) {
        inner->s[i] = load_le32(pads + 4 * i);
        outer->s[i] = load_le32(pads + 16 + 4 * i);
    }
    inner->count = 64;
    outer->count = 64;
}

static void
hmac_finish(md5_ctx *inner, md5_ctx *outer, unsigned char out[16])
{
    unsigned char digest[16];
    md5_final(inner, digest);
    md5_update(outer, digest, 16);
    md5_final(outer, out);
}

static int
check_pads(Py_buffer *pads)
{
    if (pads->len != PADS_LEN) {
        PyErr_SetString(PyExc_ValueError, "HMAC pads must be 32 octets");
        return -1;
    }
    return 0;
}

/* Take a buffer of each of ``objects`` (all or none: on failure the ones taken are given back). */
static int
take_buffers(PyObject *const *objects, Py_buffer *views, int count)
{
    for (int i = 0; i < count; i++) {
        if (PyObject_GetBuffer(objects[i], &views[i], PyBUF_SIMPLE) < 0) {
            while (i-- > 0) {
                PyBuffer_Release(&views[i]);
            }
            return -1;
        }
    }
    return 0;
}

static void
release_buffers(Py_buffer *views, int count)
{
    for (int i = 0; i < count; i++) {
        PyBuffer_Release(&views[i]);
    }
}

/* hmac_pads(key: bytes) -> bytes: the two pad states for HmacMd5. */
static PyObject *
hmac_pads(PyObject *module, PyObject *arg)
{
    Py_buffer key;
    if (PyObject_GetBuffer(arg, &key, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    unsigned char block[64];
    memset(block, 0, sizeof block);
    if (key.len > 64) {
        md5_ctx ctx;
        md5_init(&ctx);
        md5_update(&ctx, key.buf, (size_t)key.len);
        md5_final(&ctx, block);
    }
    else {
        memcpy(block, key.buf, (size_t)key.len);
    }
    PyBuffer_Release(&key);
    unsigned char out[PADS_LEN];
    for (int which = 0; which < 2; which++) {
        unsigned char padded[64];
        unsigned char x = which == 0 ? 0x36 : 0x5c;
        for (int i = 0; i < 64; i++) {
            padded[i] = block[i] ^ x;
        }
        uint32_t s[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
        md5_block(s, padded);
        for (int i = 0; i < 4; i++) {
            store_le32(out + 16 * which + 4 * i, s[i]);
        }
    }
    return PyBytes_FromStringAndSize((const char *)out, PADS_LEN);
}

/* hmac_digest(pads: bytes, *parts: bytes) -> bytes */
static PyObject *
hmac_digest(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "hmac_digest(pads, *parts)");
        return NULL;
    }
    Py_buffer pads;
    if (PyObject_GetBuffer(args[0], &pads, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (check_pads(&pads) < 0) {
        PyBuffer_Release(&pads);
        return NULL;
    }
    md5_ctx inner, outer;
    pads_load(pads.buf, &inner, &outer);
    PyBuffer_Release(&pads);
    for (Py_ssize_t i = 1; i < nargs; i++) {
        Py_buffer part;
        if (PyObject_GetBuffer(args[i], &part, PyBUF_SIMPLE) < 0) {
            return NULL;
        }
        md5_update(&inner, part.buf, (size_t)part.len);
        PyBuffer_Release(&part);
    }
    unsigned char out[16];
    hmac_finish(&inner, &outer, out);
    return PyBytes_FromStringAndSize((const char *)out, 16);
}

static int
equal16(const unsigned char *a, const unsigned char *b)
{
    unsigned char diff = 0;
    for (int i = 0; i < 16; i++) {
        diff |= a[i] ^ b[i];
    }
    return diff == 0;
}

/* Codes whose authenticator is hashed as 16 zero octets (packet.ZERO_AUTH_CODES). */
static int
zero_auth_code(int code)
{
    return code == 4 || code == 40 || code == 43;
}

/* message_authenticator_valid(pads: bytes, data: bytes, ma_offset: int) -> bool
 * RFC 3579 §3.2: HMAC-MD5 over the packet with the attribute's value zeroed (and, for
 * Accounting/CoA/Disconnect-Request, the authenticator too: RFC 5176 §3.3). */
static PyObject *
message_authenticator_valid(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "message_authenticator_valid(pads, data, ma_offset)");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[2]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer views[2]; /* pads, data */
    if (take_buffers(args, views, 2) < 0) {
        return NULL;
    }
    Py_buffer *data = &views[1];
    const unsigned char *p = data->buf;
    if (check_pads(&views[0]) < 0) {
        release_buffers(views, 2);
        return NULL;
    }
    /* Against the length left after the offset: pos + 18 could overflow for a huge pos. */
    if (data->len < 20 || pos < 20 || pos > data->len - 18) {
        release_buffers(views, 2);
        PyErr_SetString(PyExc_ValueError, "no Message-Authenticator at that offset");
        return NULL;
    }
    md5_ctx inner, outer;
    pads_load(views[0].buf, &inner, &outer);
    if (zero_auth_code(p[0])) {
        md5_update(&inner, p, 4);
        md5_update(&inner, ZEROS, 16);
        md5_update(&inner, p + 20, (size_t)(pos + 2 - 20));
    }
    else {
        md5_update(&inner, p, (size_t)(pos + 2));
    }
    md5_update(&inner, ZEROS, 16);
    md5_update(&inner, p + pos + 18, (size_t)(data->len - pos - 18));
    unsigned char expected[16];
    hmac_finish(&inner, &outer, expected);
    int ok = equal16(expected, p + pos + 2);
    release_buffers(views, 2);
    return PyBool_FromLong(ok);
}

/* sign_reply(pads, secret, code, identifier, authenticator, attrs) -> bytes
 * A reply with Message-Authenticator first, then attrs; the Message-Authenticator over the
 * packet with the request's authenticator in the header, then the Response Authenticator
 * over the finished packet (RFC 3579 §3.2, RFC 2865 §3).  Same octets as
 * packet.encode_reply(..., message_authenticator=True). */
static PyObject *
sign_reply(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "sign_reply(pads, secret, code, identifier, authenticator, attrs)");
        return NULL;
    }
    long code = PyLong_AsLong(args[2]);
    if (code == -1 && PyErr_Occurred()) {
        return NULL;
    }
    long identifier = PyLong_AsLong(args[3]);
    if (identifier == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (code < 0 || code > 255 || identifier < 0 || identifier > 255) {
        PyErr_SetString(PyExc_ValueError, "code and identifier are one octet each");
        return NULL;
    }
    PyObject *const objects[4] = {args[0], args[1], args[4], args[5]};
    Py_buffer views[4];
    if (take_buffers(objects, views, 4) < 0) {
        return NULL;
    }
    Py_buffer pads = views[0], secret = views[1], auth = views[2], attrs = views[3];
    PyObject *result = NULL;
    /* attrs.len is checked before it is added to: a buffer can claim any length. */
    Py_ssize_t length = attrs.len <= 4096 - 38 ? 38 + attrs.len : 4097;
    if (check_pads(&pads) < 0) {
        /* the error is set */
    }
    else if (auth.len != 16) {
        PyErr_SetString(PyExc_ValueError, "the request authenticator is 16 octets");
    }
    else if (attrs.len > 4096 - 38) {
        PyErr_Format(PyExc_ValueError, "reply of %zd octets exceeds 4096",
                     attrs.len < PY_SSIZE_T_MAX - 38 ? attrs.len + 38 : PY_SSIZE_T_MAX);
    }
    else {
        result = PyBytes_FromStringAndSize(NULL, length);
    }
    if (result != NULL) {
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
        out[0] = (unsigned char)code;
        out[1] = (unsigned char)identifier;
        out[2] = (unsigned char)(length >> 8);
        out[3] = (unsigned char)length;
        memcpy(out + 4, auth.buf, 16);
        out[20] = 80;
        out[21] = 18;
        memset(out + 22, 0, 16);
        memcpy(out + 38, attrs.buf, (size_t)attrs.len);
        md5_ctx inner, outer;
        pads_load(pads.buf, &inner, &outer);
        md5_update(&inner, out, (size_t)length);
        hmac_finish(&inner, &outer, out + 22);
        md5_ctx ctx;
        md5_init(&ctx);
        md5_update(&ctx, out, (size_t)length);
        md5_update(&ctx, secret.buf, (size_t)secret.len);
        md5_final(&ctx, out + 4);
    }
    release_buffers(views, 4);
    return result;
}

/* hidden_password_is(hidden, secret, authenticator, expected) -> bool
 * Same answer as crypto.hidden_password_is: whether User-Password ``hidden`` (RFC 2865 §5.2)
 * hides exactly ``expected``. */
static PyObject *
hidden_password_is(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "hidden_password_is(hidden, secret, authenticator, expected)");
        return NULL;
    }
    Py_buffer b[4];
    if (take_buffers(args, b, 4) < 0) {
        return NULL;
    }
    const unsigned char *hidden = b[0].buf, *secret = b[1].buf, *auth = b[2].buf, *expected = b[3].buf;
    Py_ssize_t size = b[0].len, want = b[3].len;
    int ok = 0;
    if (size && size % 16 == 0 && size <= 128 && want && expected[want - 1] != 0 && want <= size
        && size - want < 16) {
        /* unhide_password strips trailing NULs, so an expected value ending in NUL never
         * matches, and padding of a whole block or more means another password. */
        unsigned char diff = 0;
        const unsigned char *last = auth;
        Py_ssize_t last_len = b[2].len;
        for (Py_ssize_t i = 0; i < size; i += 16) {
            md5_ctx ctx;
            unsigned char pad[16];
            md5_init(&ctx);
            md5_update(&ctx, secret, (size_t)b[1].len);
            md5_update(&ctx, last, (size_t)last_len);
            md5_final(&ctx, pad);
            for (int j = 0; j < 16; j++) {
                unsigned char plain = hidden[i + j] ^ pad[j];
                unsigned char want_octet = i + j < want ? expected[i + j] : 0;
                diff |= plain ^ want_octet;
            }
            last = hidden + i;
            last_len = 16;
        }
        ok = diff == 0;
    }
    release_buffers(b, 4);
    return PyBool_FromLong(ok);
}

/* ---- MAC addresses (nac.mac.try_parse_mac) -------------------------------------------- */

static int
hexval(Py_UCS4 c)
{
    if (c >= '0' && c <= '9') {
        return (int)(c - '0');
    }
    if (c >= 'a' && c <= 'f') {
        return (int)(c - 'a' + 10);
    }
    if (c >= 'A' && c <= 'F') {
        return (int)(c - 'A' + 10);
    }
    return -1;
}

/* The six spellings of mac._MAC_RE, by length and separator positions:
 *   17: xx?xx?xx?xx?xx?xx with one separator, ':' or '-', used five times
 *   12: 12 hex digits
 *   14: xxxx?xxxx?xxxx with one separator, '.' or '-', used twice
 *   13: xxxxxx-xxxxxx */
static PyObject *
try_parse_mac(PyObject *module, PyObject *arg)
{
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "try_parse_mac takes a str");
        return NULL;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(arg) < 0) { /* a legacy str built by the old C API has no kind yet */
        return NULL;
    }
#endif
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    int kind = PyUnicode_KIND(arg);
    const void *text = PyUnicode_DATA(arg);
    int every;
    Py_UCS4 sep0, sep1;
    switch (n) {
    case 17:
        every = 3;
        sep0 = ':';
        sep1 = '-';
        break;
    case 12:
        every = 0;
        sep0 = sep1 = 0;
        break;
    case 14:
        every = 5;
        sep0 = '.';
        sep1 = '-';
        break;
    case 13:
        every = 7;
        sep0 = sep1 = '-';
        break;
    default:
        Py_RETURN_NONE;
    }
    uint64_t value = 0;
    Py_UCS4 sep = 0;
    int have_sep = 0; /* not sep == 0: a NUL must not pass for "no separator yet" */
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, text, i);
        if (every && (i + 1) % every == 0) {
            if (!have_sep && (c == sep0 || c == sep1)) {
                sep = c;
                have_sep = 1;
            }
            else if (!have_sep || c != sep) {
                Py_RETURN_NONE;
            }
            continue;
        }
        int v = hexval(c);
        if (v < 0) {
            Py_RETURN_NONE;
        }
        value = (value << 4) | (uint64_t)v;
    }
    return PyLong_FromUnsignedLongLong(value);
}

/* ---- packet decoding (nac.packet.decode) ---------------------------------------------- */

#define MIN_PACKET 20
#define MAX_PACKET 4096
#define MAX_ATTRIBUTES 200
#define MA_TYPE 80
#define PROXY_STATE 33

static PyObject *RequestType = NULL; /* packet.Request, a NamedTuple of 8 fields */
static PyObject *PacketErrorType = NULL;

static void
packet_error(const char *reason, PyObject *detail)
{
    if (detail == NULL) {
        return; /* formatting failed: that error stands */
    }
    /* Held: the error's own __init__ is Python code, and could call setup() again. */
    PyObject *type = Py_NewRef(PacketErrorType);
    PyObject *exc = PyObject_CallFunction(type, "sO", reason, detail);
    Py_DECREF(detail);
    if (exc != NULL) {
        PyErr_SetObject(type, exc);
        Py_DECREF(exc);
    }
    Py_DECREF(type);
}

/* setup(Request, PacketError): the types decode() builds and raises. */
static PyObject *
setup(PyObject *module, PyObject *args)
{
    PyObject *request, *error;
    if (!PyArg_ParseTuple(args, "O!O!:setup", &PyType_Type, &request, &PyType_Type, &error)) {
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)request, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "Request must be a tuple type");
        return NULL;
    }
    if (!PyExceptionClass_Check(error)) {
        PyErr_SetString(PyExc_TypeError, "PacketError must be an exception type");
        return NULL;
    }
    Py_INCREF(request);
    Py_INCREF(error);
    Py_XSETREF(RequestType, request);
    Py_XSETREF(PacketErrorType, error);
    Py_RETURN_NONE;
}

/* decode(data: bytes) -> Request; raises PacketError exactly where packet.decode does, with
 * the same reason and detail. */
static PyObject *
decode(PyObject *module, PyObject *arg)
{
    if (RequestType == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "nac._speedups.setup() was not called");
        return NULL;
    }
    PyObject *whole;
    if (PyBytes_CheckExact(arg)) {
        whole = Py_NewRef(arg);
    }
    else {
        whole = PyBytes_FromObject(arg);
        if (whole == NULL) {
            return NULL;
        }
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(whole);
    Py_ssize_t size = PyBytes_GET_SIZE(whole);
    PyObject *result = NULL, *data = NULL, *attributes = NULL, *first = NULL, *proxy = NULL;
    if (size < MIN_PACKET) {
        packet_error("too-short", PyUnicode_FromFormat("%zd octets, the minimum is %d", size, MIN_PACKET));
        goto done;
    }
    if (size > MAX_PACKET) {
        packet_error("too-long", PyUnicode_FromFormat("%zd octets, the maximum is %d", size, MAX_PACKET));
        goto done;
    }
    Py_ssize_t length = ((Py_ssize_t)p[2] << 8) | p[3];
    if (length < MIN_PACKET || length > size) {
        packet_error("bad-length", PyUnicode_FromFormat("Length field %zd, datagram %zd octets", length, size));
        goto done;
    }
    /* First pass: structure, in packet.decode's order of checks. */
    Py_ssize_t count = 0, ma_offset = -1, proxy_len = 0;
    for (Py_ssize_t pos = MIN_PACKET; pos < length;) {
        if (pos + 2 > length) {
            packet_error("bad-attribute", PyUnicode_FromFormat("attribute header cut short at octet %zd", pos));
            goto done;
        }
        int kind = p[pos];
        Py_ssize_t end = pos + p[pos + 1];
        if (end < pos + 2 || end > length) {
            packet_error("bad-attribute", PyUnicode_FromFormat(
                "attribute %d at octet %zd has length %d", kind, pos, (int)p[pos + 1]));
            goto done;
        }
        if (kind == MA_TYPE) {
            if (ma_offset >= 0) {
                packet_error("bad-attribute", PyUnicode_FromString("more than one Message-Authenticator"));
                goto done;
            }
            if (end - pos != 18) {
                packet_error("bad-attribute", PyUnicode_FromString("Message-Authenticator is not 16 octets"));
                goto done;
            }
            ma_offset = pos;
        }
        else if (kind == PROXY_STATE) {
            proxy_len += end - pos;
        }
        count++;
        pos = end;
    }
    if (count > MAX_ATTRIBUTES) {
        packet_error("too-many-attributes", PyUnicode_FromFormat(
            "%zd attributes, the limit is %d", count, MAX_ATTRIBUTES));
        goto done;
    }
    /* Second pass: the values. */
    if (length == size) {
        data = Py_NewRef(whole);
    }
    else if ((data = PyBytes_FromStringAndSize((const char *)p, length)) == NULL) {
        goto done;
    }
    if ((attributes = PyList_New(count)) == NULL || (first = PyDict_New()) == NULL
        || (proxy = PyBytes_FromStringAndSize(NULL, proxy_len)) == NULL) {
        goto done;
    }
    char *proxy_out = PyBytes_AS_STRING(proxy);
    Py_ssize_t index = 0;
    for (Py_ssize_t pos = MIN_PACKET; pos < length; index++) {
        int kind = p[pos];
        Py_ssize_t end = pos + p[pos + 1];
        if (kind == PROXY_STATE) {
            memcpy(proxy_out, p + pos, (size_t)(end - pos));
            proxy_out += end - pos;
        }
        PyObject *key = PyLong_FromLong(kind); /* a small int: cached, never fails in practice */
        PyObject *value = PyBytes_FromStringAndSize((const char *)p + pos + 2, end - pos - 2);
        PyObject *pair = (key && value) ? PyTuple_Pack(2, key, value) : NULL;
        if (pair == NULL) {
            Py_XDECREF(key);
            Py_XDECREF(value);
            goto done;
        }
        PyList_SET_ITEM(attributes, index, pair);
        int had = PyDict_Contains(first, key);
        if (had < 0 || (had == 0 && PyDict_SetItem(first, key, value) < 0)) {
            Py_DECREF(key);
            Py_DECREF(value);
            goto done;
        }
        Py_DECREF(key);
        Py_DECREF(value);
        pos = end;
    }
    PyObject *code = PyLong_FromLong(p[0]);
    PyObject *identifier = PyLong_FromLong(p[1]);
    PyObject *authenticator = PyBytes_FromStringAndSize((const char *)p + 4, 16);
    PyObject *offset = PyLong_FromSsize_t(ma_offset);
    if (!code || !identifier || !authenticator || !offset) {
        Py_XDECREF(code);
        Py_XDECREF(identifier);
        Py_XDECREF(authenticator);
        Py_XDECREF(offset);
        goto done;
    }
    /* tuple.__new__(Request, fields) without the intermediate tuple. */
    PyTypeObject *type = (PyTypeObject *)RequestType;
    result = type->tp_alloc(type, 8);
    if (result == NULL) {
        Py_DECREF(code);
        Py_DECREF(identifier);
        Py_DECREF(authenticator);
        Py_DECREF(offset);
        goto done;
    }
    PyTuple_SET_ITEM(result, 0, code);
    PyTuple_SET_ITEM(result, 1, identifier);
    PyTuple_SET_ITEM(result, 2, authenticator);
    PyTuple_SET_ITEM(result, 3, data);
    PyTuple_SET_ITEM(result, 4, attributes);
    PyTuple_SET_ITEM(result, 5, offset);
    PyTuple_SET_ITEM(result, 6, first);
    PyTuple_SET_ITEM(result, 7, proxy);
    data = attributes = first = proxy = NULL; /* now owned by result */
done:
    Py_DECREF(whole);
    Py_XDECREF(data);
    Py_XDECREF(attributes);
    Py_XDECREF(first);
    Py_XDECREF(proxy);
    return result;
}

/* ---- the module ----------------------------------------------------------------------- */

static PyMethodDef methods[] = {
    {"setup", setup, METH_VARARGS, "setup(Request, PacketError): the types decode() builds and raises."},
    {"decode", decode, METH_O, "decode(data) -> Request, as nac.packet.decode."},
    {"hmac_pads", hmac_pads, METH_O, "hmac_pads(key) -> 32 octets: the HMAC-MD5 pad states."},
    {"hmac_digest", (PyCFunction)(void (*)(void))hmac_digest, METH_FASTCALL,
     "hmac_digest(pads, *parts) -> HMAC-MD5 of the parts."},
    {"message_authenticator_valid", (PyCFunction)(void (*)(void))message_authenticator_valid, METH_FASTCALL,
     "message_authenticator_valid(pads, data, ma_offset) -> bool (RFC 3579 §3.2)."},
    {"sign_reply", (PyCFunction)(void (*)(void))sign_reply, METH_FASTCALL,
     "sign_reply(pads, secret, code, identifier, authenticator, attrs) -> the signed reply."},
    {"hidden_password_is", (PyCFunction)(void (*)(void))hidden_password_is, METH_FASTCALL,
     "hidden_password_is(hidden, secret, authenticator, expected) -> bool (RFC 2865 §5.2)."},
    {"try_parse_mac", try_parse_mac, METH_O, "try_parse_mac(text) -> int | None, as nac.mac.try_parse_mac."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "nac._speedups",
    "The request path's byte work in C; every function has a pure-Python twin in nac.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module_def);
}
