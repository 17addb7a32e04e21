"""TLS and mutual TLS from TF Serving's --ssl_config_file, with certificates made at test time."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import urllib.request
from pathlib import Path

import grpc
import pytest
from google.protobuf import text_format
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving.server import build_parser, start_server
from serving.tls import SSLConfig
from tests.helpers.tfs_models import write_half_plus

pytestmark = pytest.mark.serving

MODEL = "half_plus_two"


def _key_and_cert(subject: str, issuer_key=None, issuer_name=None, server: bool = False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=issuer_key is None, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return key, name, key_pem, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki() -> dict:
    ca_key, ca_name, _, ca_pem = _key_and_cert("embedpipe test CA")
    _, _, server_key, server_cert = _key_and_cert("localhost", ca_key, ca_name, server=True)
    _, _, client_key, client_cert = _key_and_cert("a client", ca_key, ca_name)
    return {"ca": ca_pem, "server_key": server_key, "server_cert": server_cert, "client_key": client_key, "client_cert": client_cert}


@pytest.fixture(params=[False, True], ids=["tls", "mtls"])
def tls_server(request, pki: dict, tmp_path: Path):
    import portpicker

    config = SSLConfig(server_key=pki["server_key"].decode(), server_cert=pki["server_cert"].decode(),
                       custom_ca=pki["ca"].decode(), client_verify=request.param)
    (tmp_path / "ssl.cfg").write_text(text_format.MessageToString(config))
    write_half_plus(str(tmp_path / MODEL))
    running = start_server(build_parser().parse_args(
        ["--port=0", f"--rest_api_port={portpicker.pick_unused_port()}", f"--ssl_config_file={tmp_path / 'ssl.cfg'}",
         f"--model_name={MODEL}", f"--model_base_path={tmp_path / MODEL}"]))
    yield running, request.param
    running.stop(grace=1)


def _predict(channel: grpc.Channel) -> float:
    from tests.helpers.tfs_models import predict_x_request

    return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(predict_x_request(MODEL), 10).outputs["y"].float_val[0]


def test_grpc_over_tls_and_mutual_tls(tls_server, pki: dict) -> None:
    running, client_verify = tls_server
    target = f"localhost:{running.port}"
    with_cert = grpc.ssl_channel_credentials(pki["ca"], pki["client_key"], pki["client_cert"])
    assert _predict(grpc.secure_channel(target, with_cert)) == 3.0
    without_cert = grpc.ssl_channel_credentials(pki["ca"])
    if client_verify:
        with pytest.raises(grpc.RpcError) as e:
            _predict(grpc.secure_channel(target, without_cert))
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE  # the handshake is refused
    else:
        assert _predict(grpc.secure_channel(target, without_cert)) == 3.0
    with pytest.raises(grpc.RpcError):  # plaintext never reaches the model
        _predict(grpc.insecure_channel(target))


def test_rest_over_tls_and_mutual_tls(tls_server, pki: dict, tmp_path: Path) -> None:
    running, client_verify = tls_server
    (tmp_path / "ca.pem").write_bytes(pki["ca"])
    (tmp_path / "client.pem").write_bytes(pki["client_cert"])
    (tmp_path / "client.key").write_bytes(pki["client_key"])
    url = f"https://localhost:{running.rest_port}/v1/models/{MODEL}:predict"
    body = json.dumps({"instances": [2.0]}).encode()

    def post(with_cert: bool) -> dict:
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        if with_cert:
            context.load_cert_chain(str(tmp_path / "client.pem"), str(tmp_path / "client.key"))
        with urllib.request.urlopen(url, body, timeout=10, context=context) as r:
            return json.loads(r.read())

    assert post(with_cert=True) == {"predictions": [3.0]}
    if client_verify:
        with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
            post(with_cert=False)
    else:
        assert post(with_cert=False) == {"predictions": [3.0]}
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP is not answered
        urllib.request.urlopen(url.replace("https://", "http://"), body, timeout=10)


def test_an_unusable_ssl_config_stops_the_server(tmp_path: Path, capsys) -> None:
    from serving.server import main

    (tmp_path / "ssl.cfg").write_text('server_cert: "x"')
    assert main([f"--ssl_config_file={tmp_path / 'ssl.cfg'}", f"--model_base_path={tmp_path}"]) == 2
    assert "server_key and server_cert are required" in capsys.readouterr().err
