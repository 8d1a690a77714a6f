/*
 * The native spawner: a small C program a node starts once, which starts the node's local
 * commands for it (see src/executor/spawner.ts for why a spawner exists, and
 * src/executor/spawner-frames.ts for the messages). Usage (by the node only):
 *
 *   drce-spawner SOCKET [kill-on-disconnect]     with its control socket as fd 3
 *
 * It listens on the Unix socket SOCKET (in a directory only the node's user can enter),
 * where the node connects three streams per spawn, each opening with the spawn's token and
 * 0, 1 or 2; it takes length-prefixed messages on fd 3 and answers there. It exits when fd 3
 * closes; with kill-on-disconnect it first kills the process group of every command it
 * started that the node had not released (its spawn record not yet durable).
 *
 * A spawn may name control groups: on cgroup v2 the command is created in its group by
 * clone3(CLONE_INTO_CGROUP) (Linux 5.7), so it runs there from its first instruction; where
 * that is refused (an older kernel, v1 hierarchies) the child writes its own pid into each
 * group's cgroup.procs before it execs, which is as early, at a few microseconds more.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* The same limits as the Node.js spawner's (spawner-protocol.ts). */
#define TOKEN_LENGTH 32
#define HEADER_LENGTH (TOKEN_LENGTH + 1)
#define PENDING_TIMEOUT_MS 10000
#define HEADER_TIMEOUT_MS 5000
#define SWEEP_MS 1000
#define MAX_FRAME (64u * 1024u * 1024u)

/* Message types (spawner-frames.ts). */
#define MSG_SPAWN 'S'
#define MSG_CANCEL 'C'
#define MSG_RELEASE 'R'
#define ANS_READY 'r'
#define ANS_SPAWNED 's'
#define ANS_FAILED 'f'
#define ANS_EXIT 'x'

/* Where a spawned command's control groups stand (the "placement" byte of "spawned"). */
#define PLACED_NONE 0
#define PLACED_CLONE 1
#define PLACED_WRITE 2
#define PLACED_FAILED 3

/* What a child reports on its close-on-exec pipe before it execs: nothing, or these. */
#define REPORT_FATAL 1
#define REPORT_CGROUP 2

struct spawn {
  uint32_t id;
  char token[TOKEN_LENGTH];
  int has_uid, has_gid;
  uint32_t uid, gid;
  char *file, *cwd;
  char **argv, **envp, **cgroups;
  uint32_t ncgroups;
  int has_nul;
};

struct conn {
  int fd;
  int have;
  char header[HEADER_LENGTH];
  long long deadline;
};

struct pending {
  char token[TOKEN_LENGTH];
  struct spawn *message;
  int fds[3];
  long long deadline;
};

/* A command started here: its group is killed on disconnect while it is not released. */
struct command {
  uint32_t id;
  pid_t pid;
  int released;
  int exited;
};

static const char *socket_path;
static int kill_on_disconnect;
static int control = 3;

static struct conn *conns;
static size_t nconns, capconns;
static struct pending *pendings;
static size_t npendings, cappendings;
static struct command *commands;
static size_t ncommands, capcommands;

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *grow(void *array, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return array;
  size_t next = *cap == 0 ? 16 : *cap * 2;
  while (next < need) next *= 2;
  void *bigger = realloc(array, next * size);
  if (bigger == NULL) {
    fputs("drce spawner: out of memory\n", stderr);
    exit(1);
  }
  *cap = next;
  return bigger;
}

static const char *errno_name(int error) {
  switch (error) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case ENOTDIR: return "ENOTDIR";
    case EPERM: return "EPERM";
    case ENOEXEC: return "ENOEXEC";
    case E2BIG: return "E2BIG";
    case ENOMEM: return "ENOMEM";
    case EAGAIN: return "EAGAIN";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EISDIR: return "EISDIR";
    case ETXTBSY: return "ETXTBSY";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EIO: return "EIO";
    case EFAULT: return "EFAULT";
    case ENOSYS: return "ENOSYS";
    case EBUSY: return "EBUSY";
    case ESRCH: return "ESRCH";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: return "EUNKNOWN";
  }
}

/* ---- answers ---- */

static void stop(void);

static void put32(unsigned char *at, uint32_t value) {
  at[0] = value & 0xff;
  at[1] = (value >> 8) & 0xff;
  at[2] = (value >> 16) & 0xff;
  at[3] = (value >> 24) & 0xff;
}

/* Writes one frame whole; the node gone (EPIPE) stops the spawner. */
static void send_frame(const unsigned char *payload, uint32_t length) {
  unsigned char head[4];
  put32(head, length);
  struct iovec parts[2] = {{head, 4}, {(void *)payload, length}};
  size_t total = 4 + (size_t)length, done = 0;
  while (done < total) {
    ssize_t wrote = writev(control, parts, 2);
    if (wrote < 0) {
      if (errno == EINTR) continue;
      stop();
    }
    done += (size_t)wrote;
    // A short write leaves the rest in the iovecs: advance them.
    size_t skip = (size_t)wrote;
    for (int i = 0; i < 2; i++) {
      size_t take = skip < parts[i].iov_len ? skip : parts[i].iov_len;
      parts[i].iov_base = (char *)parts[i].iov_base + take;
      parts[i].iov_len -= take;
      skip -= take;
    }
  }
}

static void send_ready(void) {
  unsigned char payload[1] = {ANS_READY};
  send_frame(payload, 1);
}

static void send_spawned(uint32_t id, pid_t pid, int placement, int error) {
  unsigned char payload[14];
  payload[0] = ANS_SPAWNED;
  put32(payload + 1, id);
  put32(payload + 5, (uint32_t)pid);
  payload[9] = (unsigned char)placement;
  put32(payload + 10, (uint32_t)error);
  send_frame(payload, sizeof payload);
}

static void send_failed(uint32_t id, const char *code, const char *message) {
  size_t code_length = strlen(code), message_length = strlen(message);
  size_t length = 1 + 4 + 4 + code_length + 4 + message_length;
  unsigned char *payload = malloc(length);
  if (payload == NULL) exit(1);
  payload[0] = ANS_FAILED;
  put32(payload + 1, id);
  put32(payload + 5, (uint32_t)code_length);
  memcpy(payload + 9, code, code_length);
  put32(payload + 9 + code_length, (uint32_t)message_length);
  memcpy(payload + 13 + code_length, message, message_length);
  send_frame(payload, (uint32_t)length);
  free(payload);
}

static void send_exit(uint32_t id, int status) {
  unsigned char payload[13];
  payload[0] = ANS_EXIT;
  put32(payload + 1, id);
  // code -1 with a signal, as child_process reports null for the one not set.
  put32(payload + 5, WIFEXITED(status) ? (uint32_t)WEXITSTATUS(status) : UINT32_MAX);
  put32(payload + 9, WIFSIGNALED(status) ? (uint32_t)WTERMSIG(status) : 0);
  send_frame(payload, sizeof payload);
}

/* ---- commands and their groups ---- */

static int group_alive(pid_t pgid) {
  return kill(-pgid, 0) == 0 || errno == EPERM;
}

/* Kills every group started here that the node has not released and may have a member. */
static void kill_groups(void) {
  for (size_t i = 0; i < ncommands; i++) {
    if (!commands[i].released) kill(-commands[i].pid, SIGKILL);
  }
}

static void forget_command(size_t i) {
  commands[i] = commands[--ncommands];
}

/*
 * A group is forgotten once it is empty: its number may then be given to a new process,
 * which must never be signalled. The node kills a finished task's rest within a drain
 * period, so this sweep finds few groups, and none for long.
 */
static void sweep_lingering(void) {
  for (size_t i = 0; i < ncommands;) {
    if (commands[i].exited && !group_alive(commands[i].pid)) forget_command(i);
    else i++;
  }
}

static int any_lingering(void) {
  for (size_t i = 0; i < ncommands; i++) if (commands[i].exited) return 1;
  return 0;
}

static void reap(void) {
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (size_t i = 0; i < ncommands; i++) {
      if (commands[i].pid != pid || commands[i].exited) continue;
      uint32_t id = commands[i].id;
      // A released group is the node's; one already empty is forgotten.
      if (commands[i].released || !group_alive(pid)) forget_command(i);
      else commands[i].exited = 1;
      send_exit(id, status);
      break;
    }
  }
}

static void release(uint32_t id) {
  for (size_t i = 0; i < ncommands; i++) {
    if (commands[i].id != id) continue;
    if (commands[i].exited) forget_command(i);
    else commands[i].released = 1;
    return;
  }
}

/* ---- starting a command ---- */

static void report(int fd, int kind, int error) {
  int record[2] = {kind, error};
  ssize_t ignored = write(fd, record, sizeof record);
  (void)ignored;
}

/* execvp(3) with the PATH of the command's own environment, as libuv searches it. */
static void exec_command(const struct spawn *message) {
  if (strchr(message->file, '/') != NULL) {
    execve(message->file, message->argv, message->envp);
    return;
  }
  const char *path = NULL;
  for (char **variable = message->envp; *variable != NULL; variable++) {
    if (strncmp(*variable, "PATH=", 5) == 0) path = *variable + 5;
  }
  if (path == NULL) path = "/usr/local/bin:/bin:/usr/bin";
  size_t file_length = strlen(message->file);
  int seen_eacces = 0;
  char candidate[PATH_MAX];
  for (const char *start = path;; start++) {
    const char *end = strchrnul(start, ':');
    size_t dir_length = (size_t)(end - start);
    if (dir_length + 1 + file_length + 1 <= sizeof candidate) {
      if (dir_length == 0) {
        memcpy(candidate, message->file, file_length + 1);
      } else {
        memcpy(candidate, start, dir_length);
        candidate[dir_length] = '/';
        memcpy(candidate + dir_length + 1, message->file, file_length + 1);
      }
      execve(candidate, message->argv, message->envp);
      if (errno == EACCES) seen_eacces = 1;
      else if (errno != ENOENT && errno != ENOTDIR) return;
    }
    if (*end == '\0') break;
    start = end;
  }
  errno = seen_eacces ? EACCES : ENOENT;
}

/* In the child, before exec: everything but the exec itself, which must not fail unseen. */
static void child_main(const struct spawn *message, const int fds[3], int report_fd, int placement) {
  sigset_t none;
  sigemptyset(&none);
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
  }
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (placement == PLACED_WRITE) {
    // Into each group before anything else: whatever this process forks is born there.
    char pid_text[24];
    int length = snprintf(pid_text, sizeof pid_text, "%d", (int)getpid());
    for (uint32_t i = 0; i < message->ncgroups; i++) {
      char procs[PATH_MAX];
      snprintf(procs, sizeof procs, "%s/cgroup.procs", message->cgroups[i]);
      int fd = open(procs, O_WRONLY | O_CLOEXEC);
      if (fd < 0 || write(fd, pid_text, (size_t)length) != length) {
        // The task runs in its process group only, as when the node cannot move it.
        report(report_fd, REPORT_CGROUP, errno);
        if (fd >= 0) close(fd);
        break;
      }
      close(fd);
    }
  }
  if (setsid() < 0) goto fail;
  for (int target = 0; target < 3; target++) {
    if (dup2(fds[target], target) < 0) goto fail;
  }
  // The directory first, then the identity, in libuv's order: a directory only the node's
  // user can enter is entered as with child_process.
  if (chdir(message->cwd) < 0) goto fail;
  if (message->has_uid || message->has_gid) {
    // The supplementary groups of the node's user are not the command's (as libuv does).
    int ignored = setgroups(0, NULL);
    (void)ignored;
  }
  if (message->has_gid && setgid(message->gid) < 0) goto fail;
  if (message->has_uid && setuid(message->uid) < 0) goto fail;
  exec_command(message);
fail:
  report(report_fd, REPORT_FATAL, errno);
  _exit(127);
}

static pid_t clone_into(int cgroup_fd) {
  struct {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
  } args;
  memset(&args, 0, sizeof args);
  args.flags = CLONE_INTO_CGROUP;
  args.exit_signal = SIGCHLD;
  args.cgroup = (uint64_t)cgroup_fd;
  return (pid_t)syscall(SYS_clone3, &args, sizeof args);
}

static void close_fds(const int fds[3]) {
  for (int i = 0; i < 3; i++) if (fds[i] >= 0) close(fds[i]);
}

static void start(struct spawn *message, int fds[3]) {
  if (message->has_nul) {
    close_fds(fds);
    send_failed(message->id, "ERR_INVALID_ARG_VALUE", "an argument, a variable, the directory or the program holds a NUL byte");
    return;
  }
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) < 0) {
    int error = errno;
    close_fds(fds);
    send_failed(message->id, errno_name(error), strerror(error));
    return;
  }
  int placement = message->ncgroups == 0 ? PLACED_NONE : PLACED_WRITE;
  pid_t pid = -1;
  if (message->ncgroups == 1) {
    int cgroup_fd = open(message->cgroups[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cgroup_fd >= 0) {
      pid = clone_into(cgroup_fd);
      close(cgroup_fd);
      if (pid == 0) child_main(message, fds, pipe_fds[1], PLACED_CLONE);
      if (pid > 0) placement = PLACED_CLONE;
    }
    // Refused (ENOSYS before 5.3, EINVAL before 5.7 or on a v1 group, a busy group):
    // the child moves itself instead.
  }
  if (pid < 0) {
    pid = fork();
    if (pid == 0) child_main(message, fds, pipe_fds[1], placement);
  }
  close(pipe_fds[1]);
  if (pid < 0) {
    int error = errno;
    close(pipe_fds[0]);
    close_fds(fds);
    send_failed(message->id, errno_name(error), strerror(error));
    return;
  }
  // The pid exists now: from here the group is this spawner's to kill if the node goes.
  commands = grow(commands, &capcommands, ncommands + 1, sizeof *commands);
  commands[ncommands++] = (struct command){message->id, pid, 0, 0};
  // Wait for the exec (the pipe closes) or the child's report, as libuv does.
  int fatal = 0, cgroup_error = 0;
  for (;;) {
    int record[2];
    ssize_t got = read(pipe_fds[0], record, sizeof record);
    if (got < 0 && errno == EINTR) continue;
    if (got != (ssize_t)sizeof record) break;
    if (record[0] == REPORT_FATAL) fatal = record[1];
    else if (record[0] == REPORT_CGROUP) cgroup_error = record[1];
  }
  close(pipe_fds[0]);
  // The command holds the sockets now; once it (and whatever it forks) closes them, the
  // node sees the end of its output.
  close_fds(fds);
  if (fatal != 0) {
    // It exited at once: reaped here, so no exit is reported for a spawn that failed.
    for (size_t i = 0; i < ncommands; i++) if (commands[i].pid == pid) forget_command(i);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    char text[PATH_MAX + 64];
    snprintf(text, sizeof text, "spawn %s %s", message->file, errno_name(fatal));
    send_failed(message->id, errno_name(fatal), text);
    return;
  }
  send_spawned(message->id, pid, cgroup_error != 0 ? PLACED_FAILED : placement, cgroup_error);
}

/* ---- messages ---- */

static void free_strings(char **strings) {
  if (strings == NULL) return;
  for (char **at = strings; *at != NULL; at++) free(*at);
  free(strings);
}

static void free_spawn(struct spawn *message) {
  if (message == NULL) return;
  free(message->file);
  free(message->cwd);
  free_strings(message->argv);
  free_strings(message->envp);
  free_strings(message->cgroups);
  free(message);
}

struct reader {
  const unsigned char *at, *end;
  int bad;
};

static uint32_t get32(struct reader *r) {
  if (r->end - r->at < 4) {
    r->bad = 1;
    return 0;
  }
  uint32_t value = (uint32_t)r->at[0] | (uint32_t)r->at[1] << 8 | (uint32_t)r->at[2] << 16 | (uint32_t)r->at[3] << 24;
  r->at += 4;
  return value;
}

static char *get_string(struct reader *r, int *has_nul) {
  uint32_t length = get32(r);
  if (r->bad || (uint32_t)(r->end - r->at) < length) {
    r->bad = 1;
    return NULL;
  }
  char *text = malloc((size_t)length + 1);
  if (text == NULL) exit(1);
  memcpy(text, r->at, length);
  text[length] = '\0';
  if (memchr(text, '\0', length) != NULL) *has_nul = 1;
  r->at += length;
  return text;
}

static char **get_strings(struct reader *r, int *has_nul, uint32_t *count) {
  uint32_t n = get32(r);
  if (r->bad || n > (uint32_t)(r->end - r->at) / 4) {
    r->bad = 1;
    return NULL;
  }
  char **strings = calloc((size_t)n + 1, sizeof *strings);
  if (strings == NULL) exit(1);
  for (uint32_t i = 0; i < n && !r->bad; i++) strings[i] = get_string(r, has_nul);
  if (count != NULL) *count = n;
  return strings;
}

static struct spawn *parse_spawn(const unsigned char *payload, uint32_t length) {
  struct reader r = {payload, payload + length, 0};
  struct spawn *message = calloc(1, sizeof *message);
  if (message == NULL) exit(1);
  message->id = get32(&r);
  if (r.end - r.at < TOKEN_LENGTH + 1) r.bad = 1;
  if (!r.bad) {
    memcpy(message->token, r.at, TOKEN_LENGTH);
    r.at += TOKEN_LENGTH;
    unsigned flags = *r.at++;
    message->has_uid = flags & 1;
    message->has_gid = (flags >> 1) & 1;
    message->uid = get32(&r);
    message->gid = get32(&r);
    message->file = get_string(&r, &message->has_nul);
    message->cwd = get_string(&r, &message->has_nul);
    message->argv = get_strings(&r, &message->has_nul, NULL);
    message->envp = get_strings(&r, &message->has_nul, NULL);
    message->cgroups = get_strings(&r, &message->has_nul, &message->ncgroups);
  }
  if (r.bad) {
    free_spawn(message);
    return NULL;
  }
  return message;
}

static struct pending *pending_for(const char *token) {
  for (size_t i = 0; i < npendings; i++) {
    if (memcmp(pendings[i].token, token, TOKEN_LENGTH) == 0) return &pendings[i];
  }
  pendings = grow(pendings, &cappendings, npendings + 1, sizeof *pendings);
  struct pending *entry = &pendings[npendings++];
  memcpy(entry->token, token, TOKEN_LENGTH);
  entry->message = NULL;
  entry->fds[0] = entry->fds[1] = entry->fds[2] = -1;
  entry->deadline = now_ms() + PENDING_TIMEOUT_MS;
  return entry;
}

static void drop_pending(struct pending *entry, int close_streams) {
  if (close_streams) close_fds(entry->fds);
  free_spawn(entry->message);
  *entry = pendings[--npendings];
}

static void start_when_complete(struct pending *entry) {
  if (entry->message == NULL || entry->fds[0] < 0 || entry->fds[1] < 0 || entry->fds[2] < 0) return;
  struct spawn *message = entry->message;
  int fds[3] = {entry->fds[0], entry->fds[1], entry->fds[2]};
  entry->message = NULL;
  drop_pending(entry, 0);
  start(message, fds);
  free_spawn(message);
}

static void on_message(const unsigned char *payload, uint32_t length) {
  if (length == 0) return;
  if (payload[0] == MSG_RELEASE && length >= 5) {
    struct reader r = {payload + 1, payload + length, 0};
    release(get32(&r));
  } else if (payload[0] == MSG_CANCEL && length >= 1 + TOKEN_LENGTH) {
    for (size_t i = 0; i < npendings; i++) {
      if (memcmp(pendings[i].token, payload + 1, TOKEN_LENGTH) == 0) {
        drop_pending(&pendings[i], 1);
        break;
      }
    }
  } else if (payload[0] == MSG_SPAWN) {
    struct spawn *message = parse_spawn(payload + 1, length - 1);
    if (message == NULL) {
      fputs("drce spawner: a malformed spawn message\n", stderr);
      return;
    }
    struct pending *entry = pending_for(message->token);
    free_spawn(entry->message);
    entry->message = message;
    start_when_complete(entry);
  }
}

/* ---- stream connections ---- */

static int valid_header(const char *header) {
  for (int i = 0; i < TOKEN_LENGTH; i++) {
    char c = header[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
  }
  return header[TOKEN_LENGTH] >= '0' && header[TOKEN_LENGTH] <= '2';
}

static void drop_conn(size_t i, int close_fd) {
  if (close_fd) close(conns[i].fd);
  conns[i] = conns[--nconns];
}

/* Reads what is left of a header, never more: what follows is the command's. */
static void on_conn_readable(size_t i) {
  struct conn *c = &conns[i];
  ssize_t got = read(c->fd, c->header + c->have, (size_t)(HEADER_LENGTH - c->have));
  if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (got <= 0) return drop_conn(i, 1);
  c->have += (int)got;
  if (c->have < HEADER_LENGTH) return;
  if (!valid_header(c->header)) return drop_conn(i, 1);
  int fd = c->fd;
  int stream = c->header[TOKEN_LENGTH] - '0';
  char token[TOKEN_LENGTH];
  memcpy(token, c->header, TOKEN_LENGTH);
  drop_conn(i, 0);
  struct pending *entry = pending_for(token);
  if (entry->fds[stream] >= 0) {
    close(fd);
    return;
  }
  // The command gets a blocking socket, as a pipe from child_process would be.
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  entry->fds[stream] = fd;
  start_when_complete(entry);
}

static void accept_all(int listener) {
  for (;;) {
    int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    conns = grow(conns, &capconns, nconns + 1, sizeof *conns);
    conns[nconns++] = (struct conn){fd, 0, {0}, now_ms() + HEADER_TIMEOUT_MS};
  }
}

static void expire(void) {
  long long now = now_ms();
  for (size_t i = 0; i < nconns;) {
    if (conns[i].deadline <= now) drop_conn(i, 1);
    else i++;
  }
  for (size_t i = 0; i < npendings;) {
    if (pendings[i].deadline > now) {
      i++;
      continue;
    }
    // A spawn the node is waiting for is answered: its streams never all arrived.
    if (pendings[i].message != NULL) send_failed(pendings[i].message->id, "ETIMEDOUT", "the command's streams did not all connect");
    drop_pending(&pendings[i], 1);
  }
}

/* ---- the loop ---- */

static void remove_socket(void) {
  unlink(socket_path);
  char *dir = strdup(socket_path);
  if (dir == NULL) return;
  char *slash = strrchr(dir, '/');
  if (slash != NULL) {
    *slash = '\0';
    rmdir(dir);
  }
  free(dir);
}

/*
 * The node is gone (killed, or it let go of this process). With kill-on-disconnect nothing
 * it started may outlive it unaccounted for: every group started here and not released is
 * killed, those the node never heard of included. Without, commands keep running.
 */
static void stop(void) {
  if (kill_on_disconnect) kill_groups();
  remove_socket();
  _exit(0);
}

int main(int argc, char **argv) {
  if (argc < 2 || fcntl(control, F_GETFD) < 0) {
    fputs("drce spawner: started by a node only (socket path and control socket on fd 3)\n", stderr);
    return 2;
  }
  socket_path = argv[1];
  kill_on_disconnect = argc > 2 && strcmp(argv[2], "kill-on-disconnect") == 0;
  fcntl(control, F_SETFD, FD_CLOEXEC);
  // Blocking reads only after poll says there is data; blocking writes of whole frames.
  fcntl(control, F_SETFL, fcntl(control, F_GETFL) & ~O_NONBLOCK);
  signal(SIGPIPE, SIG_IGN);
  sigset_t handled;
  sigemptyset(&handled);
  sigaddset(&handled, SIGCHLD);
  sigaddset(&handled, SIGTERM);
  sigaddset(&handled, SIGINT);
  sigaddset(&handled, SIGHUP);
  sigprocmask(SIG_BLOCK, &handled, NULL);
  int signals = signalfd(-1, &handled, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signals < 0) {
    perror("drce spawner: signalfd");
    return 1;
  }

  int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  if (strlen(socket_path) >= sizeof address.sun_path) {
    fprintf(stderr, "drce spawner: cannot listen on %s: the path is too long\n", socket_path);
    return 1;
  }
  strcpy(address.sun_path, socket_path);
  if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 4096) < 0) {
    fprintf(stderr, "drce spawner: cannot listen on %s: %s\n", socket_path, strerror(errno));
    return 1;
  }
  send_ready();

  unsigned char *frame = NULL;
  size_t have = 0, cap = 0;
  struct pollfd *polls = NULL;
  size_t cappolls = 0;
  for (;;) {
    size_t npolls = 3 + nconns;
    polls = grow(polls, &cappolls, npolls, sizeof *polls);
    polls[0] = (struct pollfd){control, POLLIN, 0};
    polls[1] = (struct pollfd){listener, POLLIN, 0};
    polls[2] = (struct pollfd){signals, POLLIN, 0};
    for (size_t i = 0; i < nconns; i++) polls[3 + i] = (struct pollfd){conns[i].fd, POLLIN, 0};
    long long wake = LLONG_MAX, now = now_ms();
    for (size_t i = 0; i < nconns; i++) if (conns[i].deadline < wake) wake = conns[i].deadline;
    for (size_t i = 0; i < npendings; i++) if (pendings[i].deadline < wake) wake = pendings[i].deadline;
    if (any_lingering() && now + SWEEP_MS < wake) wake = now + SWEEP_MS;
    int timeout = wake == LLONG_MAX ? -1 : (int)(wake > now ? wake - now : 0);
    int ready = poll(polls, (nfds_t)npolls, timeout);
    if (ready < 0 && errno != EINTR) {
      perror("drce spawner: poll");
      stop();
    }
    if (polls[2].revents & POLLIN) {
      struct signalfd_siginfo info;
      int child = 0;
      while (read(signals, &info, sizeof info) == (ssize_t)sizeof info) {
        if (info.ssi_signo == SIGCHLD) child = 1;
        else stop();
      }
      if (child) reap();
    }
    if (polls[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      cap = have + 65536 > cap ? have + 65536 : cap;
      unsigned char *bigger = realloc(frame, cap);
      if (bigger == NULL) exit(1);
      frame = bigger;
      ssize_t got = read(control, frame + have, cap - have);
      if (got < 0 && errno == EINTR) got = -2;
      if (got == 0 || got == -1) stop();
      if (got > 0) {
        have += (size_t)got;
        size_t at = 0;
        while (have - at >= 4) {
          uint32_t length = (uint32_t)frame[at] | (uint32_t)frame[at + 1] << 8 | (uint32_t)frame[at + 2] << 16 | (uint32_t)frame[at + 3] << 24;
          if (length > MAX_FRAME) {
            fputs("drce spawner: a message too long for the protocol\n", stderr);
            stop();
          }
          if (have - at - 4 < length) break;
          on_message(frame + at + 4, length);
          at += 4 + length;
        }
        memmove(frame, frame + at, have - at);
        have -= at;
      }
    }
    if (polls[1].revents & POLLIN) accept_all(listener);
    // Walk the connections polled (the array may have changed while starting commands).
    for (size_t p = 3; p < npolls; p++) {
      if (polls[p].revents == 0) continue;
      for (size_t i = 0; i < nconns; i++) {
        if (conns[i].fd == polls[p].fd) {
          on_conn_readable(i);
          break;
        }
      }
    }
    expire();
    if (any_lingering()) sweep_lingering();
  }
}
