/**
 * What Linux says about a process, read from /proc the same way for a Node and a Go process: CPU time
 * (utime + stime of /proc/<pid>/stat), resident memory (VmRSS of /proc/<pid>/status) and the open-files limit.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** utime and stime of a /proc/<pid>/stat line, in clock ticks. */
export function parseProcStat(text: string): { utimeTicks: number; stimeTicks: number } {
  // The command name (field 2) is in parentheses and may itself hold spaces and parentheses: count from the last ')'.
  const close = text.lastIndexOf(')');
  if (close < 0) throw new Error('not a /proc/<pid>/stat line');
  // After ')': field 3 (state) is at index 0, so field N is at index N - 3.
  const f = text.slice(close + 2).trim().split(/\s+/);
  const utimeTicks = Number(f[14 - 3]);
  const stimeTicks = Number(f[15 - 3]);
  if (!Number.isFinite(utimeTicks) || !Number.isFinite(stimeTicks)) throw new Error('no utime/stime in /proc/<pid>/stat');
  return { utimeTicks, stimeTicks };
}

/** VmRSS of a /proc/<pid>/status text, in bytes. */
export function parseVmRss(text: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  if (!m) throw new Error('no VmRSS in /proc/<pid>/status');
  return Number(m[1]) * 1024;
}

/** The soft and hard "Max open files" of a /proc/<pid>/limits text. */
export function parseNofile(text: string): { soft: number; hard: number } | undefined {
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(text);
  if (!m) return undefined;
  const n = (s: string) => (s === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(s));
  return { soft: n(m[1]!), hard: n(m[2]!) };
}

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** CPU seconds (user + system) the process has used so far. */
export function cpuSecondsOf(pid: number): number {
  const { utimeTicks, stimeTicks } = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  return (utimeTicks + stimeTicks) / clockTicks();
}

/** Resident set size in bytes. */
export function rssOf(pid: number): number {
  return parseVmRss(readFileSync(`/proc/${pid}/status`, 'utf8'));
}

/** The open-files limit of a process (`self` for this one). */
export function nofileOf(pid: number | 'self'): { soft: number; hard: number } | undefined {
  try {
    return parseNofile(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Raise a child's soft open-files limit to its hard limit (Node has no setrlimit; Go programs do this themselves
 * at start since Go 1.19). Uses util-linux `prlimit`; returns false when that is not possible.
 */
export function raiseNofile(pid: number): boolean {
  const lim = nofileOf(pid);
  if (!lim) return false;
  if (lim.soft >= lim.hard) return true;
  try {
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${lim.hard}:${lim.hard}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
