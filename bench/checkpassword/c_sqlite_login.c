/* The C baseline for SQLite: what a C checkpassword does with the system's libsqlite3:
 * read fd 3, open the file (WAL mode, synchronous=NORMAL, no checkpoint on close, as
 * ours), one prepared SELECT, crypt(3), the lastauth upsert, close, exec prog.
 * usage: c_sqlite_login FILE REMOTEIP prog [args...] */
#define _GNU_SOURCE
#include <crypt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "c_login.h"

int main(int argc, char **argv) {
  if (argc < 4) return 2;
  char buf[513], *login, *domain, *pw;
  int bad = read_fd3(buf, sizeof buf, &login, &domain, &pw);
  if (bad) return bad;
  sqlite3 *db;
  if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL)) return 111;
  sqlite3_busy_timeout(db, 10000);
  if (sqlite3_exec(db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL)) return 111;
  sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
  sqlite3_stmt *st;
  const char *q = "SELECT pw_passwd FROM vpopmail WHERE pw_name = ? AND pw_domain = ?";
  if (sqlite3_prepare_v2(db, q, -1, &st, NULL)) return 111;
  sqlite3_bind_text(st, 1, login, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, domain, -1, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_ROW) return 1;
  char hash[256];
  snprintf(hash, sizeof hash, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  struct crypt_data d;
  memset(&d, 0, sizeof d);
  char *c = crypt_r(pw, hash, &d);
  if (!c || strcmp(c, hash)) return 1;
  const char *u = "INSERT INTO lastauth (user, domain, remote_ip, timestamp) VALUES (?, ?, ?, ?) "
                  "ON CONFLICT (user, domain) DO UPDATE SET remote_ip = excluded.remote_ip, "
                  "timestamp = excluded.timestamp";
  if (sqlite3_prepare_v2(db, u, -1, &st, NULL)) return 111;
  sqlite3_bind_text(st, 1, login, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, domain, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, argv[2], -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, time(NULL));
  if (sqlite3_step(st) != SQLITE_DONE) return 111;
  sqlite3_finalize(st);
  sqlite3_close(db);
  execv(argv[3], argv + 3);
  return 111;
}
