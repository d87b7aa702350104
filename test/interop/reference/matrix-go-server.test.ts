/** Interop matrix: our agent serving the Go proxy-server, dialled by our own client. */
import { describeRole } from './matrix.js';

describeRole({ title: 'our agent -> Go server (client: ours)', server: 'go', agent: 'ts', client: 'ours' });
