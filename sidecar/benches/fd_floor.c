/*
 * fd_floor.c - the C floor for the procshot fd-table benchmark.
 *
 * Usage: fd_floor PID
 *
 * Does the minimum work any tool that reports a process's fd table must do:
 * list /proc/PID/fd and, for every entry, read the link target with
 * readlinkat() and read /proc/PID/fdinfo/N (open, read, close). Nothing is
 * parsed or formatted. Prints "fds=N" (entries handled) and "bytes=M"
 * (link targets plus fdinfo contents).
 *
 * Descriptors that disappear while we walk the table (ENOENT) are skipped.
 *
 * Build: gcc -O2 -Wall -Wextra -Werror -pthread fd_floor.c -o fd_floor
 */

#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/*
 * Read the whole of fdinfo entry `name` below dirfd `fdinfo`. One read()
 * is enough for almost every entry; only loop when the buffer filled up
 * (e.g. an epoll instance with many targets). Returns bytes read or -1.
 */
static long read_fdinfo(int fdinfo, const char *name)
{
    char buf[4096];
    long total = 0;
    ssize_t n;
    int fd = openat(fdinfo, name, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -1;
    do {
        n = read(fd, buf, sizeof(buf));
        if (n > 0)
            total += n;
    } while (n == (ssize_t)sizeof(buf) || (n < 0 && errno == EINTR));
    if (n < 0) {
        int saved = errno;

        close(fd);
        errno = saved;
        return -1;
    }
    close(fd);
    return total;
}

int main(int argc, char **argv)
{
    char path[64], link[PATH_MAX];
    long fds = 0, bytes = 0;
    int fd_dir, fdinfo_dir;
    DIR *d;
    struct dirent *e;

    if (argc != 2 || argv[1][0] == '\0' || strspn(argv[1], "0123456789") != strlen(argv[1])) {
        fprintf(stderr, "usage: fd_floor PID\n");
        return 1;
    }

    snprintf(path, sizeof(path), "/proc/%s/fd", argv[1]);
    fd_dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_dir < 0)
        die(path);
    snprintf(path, sizeof(path), "/proc/%s/fdinfo", argv[1]);
    fdinfo_dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fdinfo_dir < 0)
        die(path);

    d = fdopendir(fd_dir);
    if (d == NULL)
        die("fdopendir");

    while ((e = readdir(d)) != NULL) {
        ssize_t len;
        long info;

        if (e->d_name[0] == '.')
            continue;           /* "." and ".." */

        len = readlinkat(fd_dir, e->d_name, link, sizeof(link));
        if (len < 0) {
            if (errno == ENOENT)
                continue;       /* closed since the listing */
            die("readlinkat");
        }

        info = read_fdinfo(fdinfo_dir, e->d_name);
        if (info < 0) {
            if (errno == ENOENT)
                continue;
            die("fdinfo");
        }

        fds++;
        bytes += len + info;
    }

    closedir(d);
    close(fdinfo_dir);
    printf("fds=%ld\nbytes=%ld\n", fds, bytes);
    return 0;
}
