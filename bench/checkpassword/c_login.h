/* What the C baselines share: reading fd 3 as a checkpassword does. */
#include <string.h>
#include <unistd.h>

/* Reads login@domain\0password\0... from fd 3 into buf and splits it; 0, or the exit code
 * a checkpassword gives (2 for bad input, 1 for a login without a domain). */
static int read_fd3(char *buf, size_t size, char **user, char **domain, char **pw) {
  ssize_t len = 0, r;
  while ((r = read(3, buf + len, size - len)) > 0) len += r;
  close(3);
  if (r < 0 || len >= (ssize_t)size) return 2;
  buf[len] = 0;
  char *p = memchr(buf, 0, len);
  if (!p) return 2;
  char *at = strchr(buf, '@');
  if (!at) return 1;
  *at = 0;
  *user = buf;
  *domain = at + 1;
  *pw = p + 1;
  return 0;
}
