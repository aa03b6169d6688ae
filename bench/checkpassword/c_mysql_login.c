/* The C baseline: what a C checkpassword does against MariaDB over its unix socket,
 * with libmariadb: read fd 3, connect, one prepared SELECT, crypt(3), exec prog.
 * usage: c_mysql_login SOCKET USER PASSWORD DATABASE prog [args...] */
#define _GNU_SOURCE
#include <crypt.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "c_login.h"

int main(int argc, char **argv) {
  if (argc < 6) return 2;
  char buf[513], *login, *domain, *pw;
  int bad = read_fd3(buf, sizeof buf, &login, &domain, &pw);
  if (bad) return bad;
  MYSQL *m = mysql_init(NULL);
  if (!mysql_real_connect(m, NULL, argv[2], argv[3], argv[4], 0, argv[1], 0)) return 111;
  MYSQL_STMT *st = mysql_stmt_init(m);
  const char *q = "SELECT pw_passwd FROM vpopmail WHERE pw_name = ? AND pw_domain = ?";
  if (mysql_stmt_prepare(st, q, strlen(q))) return 111;
  MYSQL_BIND in[2], out[1];
  memset(in, 0, sizeof in);
  memset(out, 0, sizeof out);
  unsigned long ul = strlen(login), dl = strlen(domain), hl = 0;
  in[0].buffer_type = MYSQL_TYPE_STRING; in[0].buffer = login; in[0].buffer_length = ul; in[0].length = &ul;
  in[1].buffer_type = MYSQL_TYPE_STRING; in[1].buffer = domain; in[1].buffer_length = dl; in[1].length = &dl;
  char hash[256];
  out[0].buffer_type = MYSQL_TYPE_STRING; out[0].buffer = hash; out[0].buffer_length = sizeof hash - 1; out[0].length = &hl;
  if (mysql_stmt_bind_param(st, in) || mysql_stmt_execute(st) || mysql_stmt_bind_result(st, out)) return 111;
  if (mysql_stmt_fetch(st) != 0) return 1;
  hash[hl] = 0;
  mysql_stmt_close(st);
  mysql_close(m);
  struct crypt_data d;
  memset(&d, 0, sizeof d);
  char *c = crypt_r(pw, hash, &d);
  if (!c || strcmp(c, hash)) return 1;
  execv(argv[5], argv + 5);
  return 111;
}
