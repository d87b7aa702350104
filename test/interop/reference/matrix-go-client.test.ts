/** Interop matrix: konnbench (the reference's client) through our server to our agent. */
import { describeRole } from './matrix.js';

describeRole({ title: 'Go client (konnbench) -> our server -> our agent', server: 'ts', agent: 'ts', client: 'konnbench' });
