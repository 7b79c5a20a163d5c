/**
 * The client frame signature (docs/protocol.md 2.3):
 *
 *     sign = md5("action=" + action + "&online_token=" + online_token + "&sid=" + sid + "&timestamp=" + timestamp)
 *
 * as lower-case hex of the UTF-8 bytes. MD5 comes from `@noble/hashes` (audited, maintained,
 * no dependencies, the same code in browsers and Node.js).
 */
import { md5 } from "@noble/hashes/legacy.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";

/** Lower-case hex MD5 of the UTF-8 bytes of `text`. */
export function md5Hex(text: string): string {
  return bytesToHex(md5(utf8ToBytes(text)));
}

/** The `sign` of a client frame; `timestamp` is signed as the text the frame carries. */
export function frameSign(action: string, onlineToken: string, sid: string, timestamp: number | string): string {
  return md5Hex(`action=${action}&online_token=${onlineToken}&sid=${sid}&timestamp=${timestamp}`);
}
