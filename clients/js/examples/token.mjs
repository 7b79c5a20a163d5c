// A client token for danmu-broker, made by the app's backend (docs/protocol.md 2.1): an HS256
// JWT signed with the broker's auth.jwt_secret; `sub` is the user_id, `exp` when it expires;
// nickname, sex, avatar_url and avatar_small_url are the profile room events show (optional).
import { SignJWT } from "jose";

const secret = process.env.DANMU__AUTH__JWT_SECRET;   // the same value as the broker's auth.jwt_secret
if (!secret) throw new Error("set DANMU__AUTH__JWT_SECRET to the broker's auth.jwt_secret");
const key = new TextEncoder().encode(secret);

export function danmuToken(userId, { nickname, sex, avatar_url, avatar_small_url } = {}) {
  return new SignJWT({ nickname, sex, avatar_url, avatar_small_url })   // undefined claims are left out
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(userId)
    .setExpirationTime("1h")
    .sign(key);
}
