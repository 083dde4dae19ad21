// Drives LiveKit's official Node SDK (livekit-server-sdk) for Warden's interop tests.
//
//   LK_KEY=… LK_SECRET=… node tests/interop/token.mjs mint '<spec json>'   -> prints a JWT
//   LK_KEY=… LK_SECRET=… node tests/interop/token.mjs verify <token>       -> prints the claims as JSON
//
// spec: {"identity", "name", "ttl" (seconds), "metadata", "attributes", "kind", "video": {camelCase grants}}
// The secret comes from the environment so it never shows in a process list.
import { AccessToken, TokenVerifier, TrackSource } from 'livekit-server-sdk';

const [cmd, arg] = process.argv.slice(2);
const key = process.env.LK_KEY;
const secret = process.env.LK_SECRET;
if (!key || !secret || !cmd || !arg) {
  console.error('usage: LK_KEY=… LK_SECRET=… node token.mjs mint <spec-json> | verify <token>');
  process.exit(2);
}

try {
  if (cmd === 'mint') {
    const spec = JSON.parse(arg);
    const at = new AccessToken(key, secret, {
      identity: spec.identity,
      name: spec.name,
      ttl: spec.ttl,
      metadata: spec.metadata,
      attributes: spec.attributes,
    });
    if (spec.kind) at.kind = spec.kind;
    if (spec.video) {
      // The SDK takes track sources as TrackSource enum values and writes them as LiveKit's names.
      const video = { ...spec.video };
      if (Array.isArray(video.canPublishSources)) {
        video.canPublishSources = video.canPublishSources.map((s) => TrackSource[s.toUpperCase()]);
      }
      at.addGrant(video);
    }
    console.log(await at.toJwt());
  } else if (cmd === 'verify') {
    const claims = await new TokenVerifier(key, secret).verify(arg);
    console.log(JSON.stringify({
      identity: claims.sub,
      iss: claims.iss,
      name: claims.name ?? '',
      metadata: claims.metadata ?? '',
      attributes: claims.attributes ?? {},
      kind: claims.kind ?? '',
      video: claims.video ?? {},
      exp: claims.exp,
      nbf: claims.nbf,
    }));
  } else {
    console.error(`unknown command ${cmd}`);
    process.exit(2);
  }
} catch (e) {
  console.error(`refused: ${e.code ?? e.name}: ${e.message}`);
  process.exit(1);
}
