/** Interop matrix: the Go proxy-agent serving our server, dialled by konnbench (the reference's client). */
import { describeRole } from './matrix.js';

describeRole({ title: 'Go agent -> our server (client: konnbench)', server: 'ts', agent: 'go', client: 'konnbench' });
