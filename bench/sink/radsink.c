/*
 * radsink: the fastest RADIUS "server" we can write, to measure the load generator's ceiling.
 *
 * Answers every Access-Request with an empty Access-Accept whose Response Authenticator is
 * correct (RFC 2865 §3), nothing else: no policy, no Message-Authenticator check.  Uses
 * recvmmsg/sendmmsg in batches so it costs a few hundred nanoseconds per packet, far less
 * than any real server, and whatever rate `nac.bench` reaches against it is the generator's.
 *
 *   cc -O2 -o radsink radsink.c -lcrypto       (Debian: apt-get install libssl-dev)
 *   taskset -c 0 ./radsink 18199 testing123
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define MAXLEN 4096

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT SECRET\n", argv[0]);
        return 2;
    }
    const char *secret = argv[2];
    size_t secret_len = strlen(secret);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int size = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("bind");
        return 1;
    }
    static unsigned char in[BATCH][MAXLEN], out[BATCH][20];
    static struct sockaddr_in peers[BATCH];
    struct mmsghdr rmsgs[BATCH], smsgs[BATCH];
    struct iovec riov[BATCH], siov[BATCH];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            riov[i] = (struct iovec){in[i], MAXLEN};
            rmsgs[i] = (struct mmsghdr){0};
            rmsgs[i].msg_hdr.msg_iov = &riov[i];
            rmsgs[i].msg_hdr.msg_iovlen = 1;
            rmsgs[i].msg_hdr.msg_name = &peers[i];
            rmsgs[i].msg_hdr.msg_namelen = sizeof peers[i];
        }
        int n = recvmmsg(fd, rmsgs, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            perror("recvmmsg");
            continue;
        }
        int m = 0;
        for (int i = 0; i < n; i++) {
            unsigned char *q = in[i], *r = out[m];
            if (rmsgs[i].msg_len < 20 || q[0] != 1) continue;
            r[0] = 2;
            r[1] = q[1];
            r[2] = 0;
            r[3] = 20;
            unsigned int dlen;
            EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
            EVP_DigestUpdate(ctx, r, 4);
            EVP_DigestUpdate(ctx, q + 4, 16);
            EVP_DigestUpdate(ctx, secret, secret_len);
            EVP_DigestFinal_ex(ctx, r + 4, &dlen);
            siov[m] = (struct iovec){r, 20};
            smsgs[m] = (struct mmsghdr){0};
            smsgs[m].msg_hdr.msg_iov = &siov[m];
            smsgs[m].msg_hdr.msg_iovlen = 1;
            smsgs[m].msg_hdr.msg_name = &peers[i];
            smsgs[m].msg_hdr.msg_namelen = rmsgs[i].msg_hdr.msg_namelen;
            m++;
        }
        if (m && sendmmsg(fd, smsgs, m, 0) < 0) perror("sendmmsg");
    }
}
