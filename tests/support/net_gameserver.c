/* The game server of tests/docker/test_docker_network.py, built static (the test image has no libc):
   TCP and UDP on one port, as a game's allocation is published. */
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int bound(int type, int port) {
    int fd = socket(AF_INET, type, 0), on = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); exit(2); }
    if (type == SOCK_STREAM && listen(fd, 16) < 0) { perror("listen"); exit(2); }
    return fd;
}

/* Answers "tcp <what it got>" on TCP and "udp <what it got>" on UDP; "stop" on stdin ends it. */
int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    struct pollfd p[3] = {{bound(SOCK_STREAM, port), POLLIN}, {bound(SOCK_DGRAM, port), POLLIN}, {0, POLLIN}};
    char buf[512], out[600];
    printf("game listening on %d tcp+udp\n", port);
    fflush(stdout);
    for (;;) {
        if (poll(p, 3, -1) < 0) continue;
        if (p[0].revents) {
            int c = accept(p[0].fd, NULL, NULL);
            ssize_t n = c < 0 ? -1 : read(c, buf, sizeof buf);
            if (n > 0) { int m = snprintf(out, sizeof out, "tcp %.*s", (int)n, buf); write(c, out, m); }
            if (c >= 0) close(c);
        }
        if (p[1].revents) {
            struct sockaddr_storage from; socklen_t len = sizeof from;
            ssize_t n = recvfrom(p[1].fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
            if (n > 0) { int m = snprintf(out, sizeof out, "udp %.*s", (int)n, buf); sendto(p[1].fd, out, m, 0, (struct sockaddr *)&from, len); }
        }
        if (p[2].revents) {
            ssize_t n = read(0, buf, sizeof buf);
            if (n <= 0 || strncmp(buf, "stop", 4) == 0) { puts("bye"); return 0; }
        }
    }
}
