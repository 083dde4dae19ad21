// The fan-out floor without the Rust generator: how fast can this machine
// put one small segment on each of N loopback TCP connections and have epoll
// readers in the same process read them all? Prints each round's p50/p99/max
// (from the start of the writes to each read) and all rounds pooled.
//
//   gcc -O2 -pthread scripts/floor.c -o /tmp/floor && /tmp/floor 9900 2 1 10
//
// usage: floor N writer_threads reader_threads rounds. Both ends of every
// connection live in this process: N is at most about half the file limit.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int N, WT, RT, ROUNDS;
static int *srv, *cli;
static double *lat;
static atomic_int got;
static atomic_int round_no;
static struct timespec t0;
static pthread_barrier_t wbar, wdone;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (t.tv_sec - t0.tv_sec) * 1e3 + (t.tv_nsec - t0.tv_nsec) / 1e6;
}

static const char msg[] = "id: 1:2:3\nevent: participant_joined\ndata: {\"room\":\"r1\",\"x\":1}\n\n";

static void *writer(void *arg) {
  long k = (long)arg;
  for (int r = 0; r < ROUNDS; r++) {
    pthread_barrier_wait(&wbar);
    for (int i = k; i < N; i += WT) {
      if (write(srv[i], msg, sizeof msg - 1) < 0) perror("write");
    }
    pthread_barrier_wait(&wdone);
  }
  return 0;
}

static void *reader(void *arg) {
  long k = (long)arg;
  int ep = epoll_create1(0);
  for (int i = k; i < N; i += RT) {
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, cli[i], &e);
  }
  struct epoll_event evs[1024];
  char buf[4096];
  for (;;) {
    int n = epoll_wait(ep, evs, 1024, 100);
    if (n < 0 && errno == EINTR) continue;
    if (atomic_load(&round_no) < 0) return 0;
    for (int j = 0; j < n; j++) {
      int i = evs[j].data.u32;
      ssize_t m = read(cli[i], buf, sizeof buf);
      if (m > 0) {
        lat[i] = now_ms();
        atomic_fetch_add(&got, 1);
      }
    }
  }
}

static int cmp(const void *a, const void *b) {
  double x = *(double *)a, y = *(double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s N writer_threads reader_threads rounds\n", argv[0]);
    return 2;
  }
  N = atoi(argv[1]);
  WT = atoi(argv[2]);
  RT = atoi(argv[3]);
  ROUNDS = atoi(argv[4]);
  srv = calloc(N, sizeof(int));
  cli = calloc(N, sizeof(int));
  lat = calloc(N, sizeof(double));
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
  bind(l, (void *)&a, sizeof a);
  listen(l, 4096);
  socklen_t al = sizeof a;
  getsockname(l, (void *)&a, &al);
  int one = 1;
  for (int i = 0; i < N; i++) {
    cli[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(cli[i], (void *)&a, sizeof a);
    srv[i] = accept(l, 0, 0);
    if (cli[i] < 0 || srv[i] < 0) {
      fprintf(stderr, "connection %d: %s (N too large for the file limit?)\n", i, strerror(errno));
      return 1;
    }
    setsockopt(srv[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(cli[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  pthread_barrier_init(&wbar, 0, WT + 1);
  pthread_barrier_init(&wdone, 0, WT + 1);
  pthread_t th;
  for (long k = 0; k < WT; k++) pthread_create(&th, 0, writer, (void *)k);
  if (WT < 1 || RT < 1 || RT > 16 || N < 1 || ROUNDS < 1) {
    fprintf(stderr, "need N, writers, rounds >= 1 and 1..16 readers\n");
    return 2;
  }
  pthread_t rth[16];
  for (long k = 0; k < RT; k++) pthread_create(&rth[k], 0, reader, (void *)k);
  double *all = calloc((size_t)N * ROUNDS, sizeof(double));
  for (int r = 0; r < ROUNDS; r++) {
    usleep(500000);
    atomic_store(&got, 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_barrier_wait(&wbar);
    pthread_barrier_wait(&wdone);
    double wend = now_ms();
    while (atomic_load(&got) < N) usleep(100);
    memcpy(all + (size_t)r * N, lat, N * sizeof(double));
    qsort(lat, N, sizeof(double), cmp);
    printf("round %d: writes done %.1f ms, p50 %.1f p99 %.1f max %.1f ms\n", r, wend, lat[N / 2],
           lat[N * 99 / 100], lat[N - 1]);
  }
  qsort(all, (size_t)N * ROUNDS, sizeof(double), cmp);
  size_t T = (size_t)N * ROUNDS;
  printf("ALL N=%d writers=%d readers=%d: p50 %.1f p99 %.1f max %.1f ms\n", N, WT, RT, all[T / 2],
         all[T * 99 / 100], all[T - 1]);
  atomic_store(&round_no, -1);
  return 0;
}
