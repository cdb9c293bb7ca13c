import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AuditError } from './errors.ts';

/**
 * Takes `audit-<instance>.lock` in `dir` so that two processes never write one chain. A lock
 * left by a process that no longer runs (for example after SIGKILL) is taken over.
 */
export async function takeLock(dir: string, instance: string): Promise<string> {
  const file = path.join(dir, `audit-${instance}.lock`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(file, String(process.pid), { flag: 'wx', mode: 0o640 });
      return file;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new AuditError('WG_AUDIT_DIR_UNUSABLE', `Cannot write the lock file ${file} (${(error as NodeJS.ErrnoException).code}); set audit.dir to a writable folder.`, { cause: error });
      }
    }
    const owner = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isRunning(owner)) {
      throw new AuditError('WG_AUDIT_DIR_LOCKED', `Process ${owner} already writes the audit trail of instance ${JSON.stringify(instance)} in ${dir}; give each instance its own audit.instance_id or audit.dir.`);
    }
    await rm(file, { force: true });
  }
  throw new AuditError('WG_AUDIT_DIR_LOCKED', `Cannot take the lock file ${file}; another process keeps creating it.`);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
