/*
 * checksum.c - checksum every file under a directory in parallel, with a
 * progress bar on the terminal.  One task per file, all in one group: the
 * group's progress callback draws the bar, crew_group_wait() waits for the
 * files only, and the group's first error says if any file failed.
 *
 * Usage: checksum [DIR]   (default: the current directory)
 */
#include <crew.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct file {
    char *path;
    unsigned long sum;          /* written by its task only */
};

/* A simple rolling checksum (Adler-32 style) of the whole file. */
static int checksum(crew_ctx_t *ctx, void *arg, void **result)
{
    struct file *f = arg;
    unsigned long a = 1, b = 0;
    unsigned char buf[1 << 14];
    size_t n;
    FILE *fp = fopen(f->path, "rb");

    (void)ctx;
    (void)result;
    if (fp == NULL)
        return errno;
    while ((n = fread(buf, 1, sizeof(buf), fp)) > 0) {
        for (size_t i = 0; i < n; i++) {
            a = (a + buf[i]) % 65521;
            b = (b + a) % 65521;
        }
    }
    fclose(fp);
    f->sum = (b << 16) | a;
    return 0;
}

static pthread_mutex_t term = PTHREAD_MUTEX_INITIALIZER;

static void draw(const crew_progress_t *p, void *user)
{
    uint64_t finished = p->done + p->failed + p->cancelled;
    int width = 40, full = p->total ? (int)(finished * width / p->total) : 0;

    (void)user;
    pthread_mutex_lock(&term);      /* reports may come from two threads */
    fprintf(stderr, "\r[%.*s%*s] %llu/%llu", full,
            "########################################", width - full, "",
            (unsigned long long)finished, (unsigned long long)p->total);
    pthread_mutex_unlock(&term);
}

/* Collect regular files under dir, recursively. */
static void walk(const char *dir, struct file **files, size_t *n,
                 size_t *cap)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        size_t len;
        char *path;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        len = strlen(dir) + strlen(e->d_name) + 2;
        path = malloc(len);
        if (path == NULL)
            break;
        snprintf(path, len, "%s/%s", dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            walk(path, files, n, cap);
            free(path);
        } else if (S_ISREG(st.st_mode) && (*n < *cap ||
                   (*files = realloc(*files, (*cap = *cap * 2 + 16) *
                                     sizeof(**files))) != NULL)) {
            (*files)[(*n)++] = (struct file){ path, 0 };
        } else {
            free(path);
        }
    }
    closedir(d);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    crew_group_opts_t gopts = { .on_progress = draw,
                                .progress_interval_ns = 50 * 1000 * 1000 };
    struct file *files = NULL;
    size_t n = 0, cap = 0;
    crew_group_t *group;
    crew_t *pool;
    int rc;

    walk(dir, &files, &n, &cap);
    if (crew_create(&pool, NULL) != 0 ||
        crew_group_create(pool, &gopts, &group) != 0)
        return 1;
    for (size_t i = 0; i < n; i++) {
        crew_task_opts_t o = { .group = group };

        if (crew_spawn(pool, checksum, &files[i], &o, NULL) != 0)
            return 1;
    }
    rc = crew_group_wait(group);
    fprintf(stderr, "\n");
    for (size_t i = 0; i < n && i < 5; i++)
        printf("%08lx  %s\n", files[i].sum, files[i].path);
    printf("%zu files checksummed%s\n", n,
           rc == 0 ? "" : "; some could not be read");
    crew_group_free(group);
    crew_free(pool);
    for (size_t i = 0; i < n; i++)
        free(files[i].path);
    free(files);
    return 0;
}
