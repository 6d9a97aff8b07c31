// Rewriting a file that may be the only copy of what it holds (a production signing-key set).

import { randomBytes } from "node:crypto";
import { closeSync, existsSync, fchmodSync, fsyncSync, openSync, realpathSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/**
 * Replaces `path` with `text` whole or not at all. Writing over the file in place truncates it
 * first, so a crash, a full disk or a power cut mid-write would leave a cut-off file and lose
 * the rest. Instead the text goes to a new file beside it (same directory, so same file system),
 * which is flushed to disk and then renamed over the original: rename(2) replaces a name in one
 * step (POSIX), so a reader sees the old file or the new one, never part of one.
 *
 * The new file is created with `mode` (default 0600: it holds private keys) before any byte is
 * written, so it is never readable by others, even for a moment. A symlink is followed and its
 * target replaced, so a set kept elsewhere (an encrypted volume) stays where it is.
 */
export function writeFileAtomic(path, text, { mode = 0o600 } = {}) {
  const target = existsSync(path) ? realpathSync(path) : path;
  const dir = dirname(target);
  // Unique per run: two runs never write into, or rename, each other's half-written file.
  const temp = join(dir, `${basename(target)}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`);
  let renamed = false;
  try {
    const fd = openSync(temp, "wx", mode);
    try {
      fchmodSync(fd, mode); // the umask may have taken bits off the mode openSync asked for
      const bytes = Buffer.from(text, "utf8");
      for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at);
      fsyncSync(fd); // on disk before it takes the name: a rename can reach the disk before the data
    } finally {
      closeSync(fd);
    }
    renameSync(temp, target);
    renamed = true;
  } finally {
    if (!renamed) rmSync(temp, { force: true });
  }
  syncDirectory(dir);
}

/** Flushes a directory entry change (the rename) to disk; a platform that cannot (Windows) is left to its own flushing. */
function syncDirectory(dir) {
  let fd;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // Not supported for directories here: the rename is still atomic, only perhaps not yet durable.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
