# A client token for danmu-broker, made by the app's backend (docs/protocol.md 2.1), with PyJWT
# (pip install PyJWT): HS256 with the broker's auth.jwt_secret, `sub` the user_id, `exp`.
import os
import time

import jwt

SECRET = os.environ["DANMU__AUTH__JWT_SECRET"]  # the same value as the broker's auth.jwt_secret


def danmu_token(user_id, nickname=None, ttl_s=3600):
    claims = {"sub": user_id, "exp": int(time.time()) + ttl_s}
    if nickname is not None:
        claims["nickname"] = nickname
    return jwt.encode(claims, SECRET, algorithm="HS256")


if __name__ == "__main__":
    import sys

    print(danmu_token(*sys.argv[1:3]))
