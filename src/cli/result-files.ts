import { mkdir, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { FileResult } from "../../gen/drce/v1/task_pb.js";
import { LocalError } from "./errors.js";
import type { CliIo } from "./io.js";
import { confinedPath, type GetRequest } from "./option-values.js";
import { writeLines } from "./output.js";

async function writeLocal(path: string, data: Uint8Array): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, data);
  } catch (error) {
    throw new LocalError(`cannot write ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
}

/**
 * Writes the files asked for with `--get NAME[:LOCALPATH]`. Only requested names are
 * written, whatever else the node returns; a requested file the node did not return is
 * reported on stderr. Returns the number of missing files.
 */
export async function writeRequestedFiles(gets: readonly GetRequest[], files: readonly FileResult[], io: CliIo, cwd = process.cwd()): Promise<number> {
  let missing = 0;
  for (const get of gets) {
    const file = files.find((f) => f.name === get.name);
    if (file === undefined) {
      missing++;
      await writeLines(io.stderr, [`drce: file ${get.name} was not returned by the task`]);
      continue;
    }
    await writeLocal(resolve(cwd, get.localPath), file.data);
  }
  return missing;
}

/**
 * Writes every returned file under dir (`fetch --files-dir`). Names that are absolute or
 * climb out of dir are skipped with a warning: the node chooses them, not the user.
 */
export async function writeFilesUnder(dir: string, files: readonly FileResult[], io: CliIo): Promise<void> {
  for (const file of files) {
    const path = confinedPath(dir, file.name);
    if (path === undefined) {
      await writeLines(io.stderr, [`drce: skipped file ${JSON.stringify(file.name)}: it would be outside ${dir}`]);
      continue;
    }
    await writeLocal(path, file.data);
  }
}
