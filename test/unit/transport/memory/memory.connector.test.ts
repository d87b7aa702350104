/** The shared TunnelConnector compliance suite over memoryConnector. */
import { memoryConnector } from '../../../../src/transport/memory/index.js';
import { describeTunnelConnectorCompliance } from '../../../compliance/tunnel-connector.js';

describeTunnelConnectorCompliance('memory connector', async (onIncoming) => ({
  connector: memoryConnector(onIncoming),
}));
describeTunnelConnectorCompliance('memory connector with substreams', async (onIncoming) => ({
  connector: memoryConnector(onIncoming, { substreams: true }),
}));
