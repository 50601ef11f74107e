// Which process holds a lock or a lease, and whether it is still alive: a holder on this
// machine whose process is gone can be taken over at once instead of waiting out a timeout.
import { hostname } from 'node:os';

/** This process, as a lease owner: `host:pid`. */
export const thisProcess = (): string => `${hostname()}:${process.pid}`;

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A `host:pid` owner on this machine whose process has ended (another machine's is not known). */
export function deadHere(owner: string): boolean {
  const at = owner.lastIndexOf(':');
  return owner.slice(0, at) === hostname() && !processAlive(Number(owner.slice(at + 1)));
}
