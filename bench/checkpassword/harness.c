/* Times N logins: each a fork, credentials written to a pipe on fd 3, exec of the
 * checkpassword under test (which execs /bin/true on success), waitpid. Prints the
 * median and 90th percentile in microseconds. With "hash SETTING" it times crypt(3)
 * instead, the cost of the password hash alone.
 * With "-ab BIN_A BIN_B" it runs the two builds turn about (A B, B A, A B, ...), each as
 * "BIN /bin/true", so that both see the same moments of a VM whose speed drifts within
 * seconds, and prints the medians of A and B and the median of the per-pair differences
 * B - A with its quartiles: the figure that tells a change of 0.1 ms from the noise. */
#define _GNU_SOURCE
#include <crypt.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char rec[600];
static size_t rec_len;

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* One login of prog (argv style); its wall time in us, or -1 if it failed. */
static double login(char **prog) {
  int p[2];
  if (pipe(p)) exit(111);
  double s = now_us();
  pid_t c = fork();
  if (c == 0) {
    signal(SIGPIPE, SIG_DFL);
    /* Our log line per login would swamp the report. */
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, 2);
    dup2(p[0], 3);
    if (p[0] != 3) close(p[0]);
    close(p[1]);
    execv(prog[0], prog);
    _exit(127);
  }
  close(p[0]);
  /* /bin/true as the floor exits without reading fd 3. */
  if (write(p[1], rec, rec_len) != (ssize_t)rec_len && strcmp(prog[0], "/bin/true")) exit(111);
  close(p[1]);
  int st;
  waitpid(c, &st, 0);
  double t = now_us() - s;
  if ((!WIFEXITED(st) || WEXITSTATUS(st) != 0) && !getenv("HARNESS_ANY_STATUS")) {
    fprintf(stderr, "%s: login failed: status %d\n", prog[0], st);
    return -1;
  }
  return t;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: harness N login:password prog [args...] | harness N hash SETTING PASSWORD\n"
                    "       harness N login:password -ab BIN_A BIN_B\n");
    return 100;
  }
  int n = atoi(argv[1]);
  if (n < 1 || n > 100000) return 100;
  double *t = calloc(n, sizeof *t);
  signal(SIGPIPE, SIG_IGN);
  if (!strcmp(argv[2], "hash")) {
    struct crypt_data d;
    for (int i = 0; i < n; i++) {
      memset(&d, 0, sizeof d);
      double s = now_us();
      char *r = crypt_r(argv[4], argv[3], &d);
      t[i] = now_us() - s;
      if (!r || strcmp(r, argv[3])) { fprintf(stderr, "hash mismatch\n"); return 111; }
    }
    qsort(t, n, sizeof *t, cmp);
    printf("%.0f %.0f\n", t[n / 2], t[(n * 9) / 10]);
    return 0;
  }
  char *colon = strchr(argv[2], ':');
  if (!colon) return 100;
  size_t ul = colon - argv[2], pl = strlen(colon + 1);
  if (ul + pl + 3 > sizeof rec) return 100;
  memcpy(rec, argv[2], ul);
  memcpy(rec + ul + 1, colon + 1, pl);
  rec_len = ul + pl + 3;
  if (!strcmp(argv[3], "-ab")) {
    if (argc != 6) return 100;
    char *a_prog[] = {argv[4], "/bin/true", NULL}, *b_prog[] = {argv[5], "/bin/true", NULL};
    double *b = calloc(n, sizeof *b), *d = calloc(n, sizeof *d);
    for (int i = 0; i < n; i++) {
      if (i & 1) {
        b[i] = login(b_prog);
        t[i] = login(a_prog);
      } else {
        t[i] = login(a_prog);
        b[i] = login(b_prog);
      }
      if (t[i] < 0 || b[i] < 0) return 111;
      d[i] = b[i] - t[i];
    }
    qsort(t, n, sizeof *t, cmp);
    qsort(b, n, sizeof *b, cmp);
    qsort(d, n, sizeof *d, cmp);
    printf("A %.0f  B %.0f  B-A %+.0f (quartiles %+.0f %+.0f)\n", t[n / 2], b[n / 2], d[n / 2],
           d[n / 4], d[(3 * n) / 4]);
    return 0;
  }
  for (int i = 0; i < n; i++)
    if ((t[i] = login(argv + 3)) < 0) return 111;
  qsort(t, n, sizeof *t, cmp);
  printf("%.0f %.0f\n", t[n / 2], t[(n * 9) / 10]);
  return 0;
}
