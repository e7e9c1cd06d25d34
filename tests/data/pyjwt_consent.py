"""An implementation we did not write checks our consent tokens: PyJWT (Debian's python3-jwt).

  verify TOKEN          verify the ES256 signature with the x5c certificate's key; print the claims
  sign KEY CERT CLAIMS  sign CLAIMS (JSON) with KEY (PKCS#8 PEM), CERT (PEM) in x5c; print the token
"""
import base64
import json
import sys

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

if sys.argv[1] == "verify":
    token = sys.argv[2]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["typ"] == "bureau-consent+jwt", header
    cert = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    claims = jwt.decode(token, cert.public_key(), algorithms=["ES256"])
    print(json.dumps(claims, sort_keys=True))
elif sys.argv[1] == "sign":
    key = open(sys.argv[2], "rb").read()
    cert = x509.load_pem_x509_certificate(open(sys.argv[3], "rb").read())
    x5c = [base64.b64encode(cert.public_bytes(Encoding.DER)).decode()]
    headers = {"typ": "bureau-consent+jwt", "x5c": x5c}
    print(jwt.encode(json.loads(sys.argv[4]), key, algorithm="ES256", headers=headers))
