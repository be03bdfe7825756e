// A real OIDC provider for tests/api/oidc.rs: npm's oauth2-mock-server with an RS256 key, listening on
// 127.0.0.1:<port>. POST /token (grant_type=client_credentials) returns an access token whose `sub` and
// `groups` are the form fields of the same names, for the audience `modelcat`.
import { OAuth2Server } from 'oauth2-mock-server';

const port = Number(process.argv[2] ?? 0);
const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
server.issuer.url = `http://127.0.0.1:${port}`;
server.service.on('beforeTokenSigning', (token, request) => {
  token.payload.aud = 'modelcat';
  token.payload.sub = request.body.sub;
  token.payload.groups = String(request.body.groups ?? '').split(',').filter(Boolean);
});
await server.start(port, '127.0.0.1');
console.log(`issuer ${server.issuer.url}`);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    await server.stop();
    process.exit(0);
  });
}
