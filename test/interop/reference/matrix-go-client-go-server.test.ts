/** Interop matrix: konnbench (the reference's client) through the Go proxy-server to our agent. */
import { describeRole } from './matrix.js';

describeRole({ title: 'Go client (konnbench) -> Go server -> our agent', server: 'go', agent: 'ts', client: 'konnbench' });
