"""TF Serving's test models, built here the way its generator script builds them.

tensorflow_serving/servables/tensorflow/testdata/saved_model_half_plus_two.py writes a TF1 graph
with SavedModelBuilder: a serialized tf.Example input parsed into ``x`` and ``x2``,
``y = a*x + b``, ``y2 = a*x + c``, ``y3 = a*x2 + c`` (a=0.5, b=2 or 3, c=3), and signatures
``serving_default`` (predict x -> y), ``regress_x_to_y``, ``regress_x_to_y2``,
``regress_x2_to_y3``, ``classify_x_to_y`` (the five of the checked-in testdata model, whose
metadata JSON the REST test compares with). Its testdata keeps each
model in a zero-padded version folder (``00000123``), which a drop-in server must serve as
version 123 from that folder. ``saved_model_half_plus_two_tflite`` has ``model.tflite`` beside
the SavedModel.
"""

from __future__ import annotations

import os

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

VERSION_DIR = "00000123"


def _regression_signature(input_tensor, output_tensor):
    v1 = tf.compat.v1
    return v1.saved_model.signature_def_utils.build_signature_def(
        inputs={v1.saved_model.signature_constants.REGRESS_INPUTS: v1.saved_model.utils.build_tensor_info(input_tensor)},
        outputs={v1.saved_model.signature_constants.REGRESS_OUTPUTS: v1.saved_model.utils.build_tensor_info(output_tensor)},
        method_name=v1.saved_model.signature_constants.REGRESS_METHOD_NAME,
    )


def _classification_signature(input_tensor, scores_tensor):
    v1 = tf.compat.v1
    return v1.saved_model.signature_def_utils.build_signature_def(
        inputs={v1.saved_model.signature_constants.CLASSIFY_INPUTS: v1.saved_model.utils.build_tensor_info(input_tensor)},
        outputs={v1.saved_model.signature_constants.CLASSIFY_OUTPUT_SCORES: v1.saved_model.utils.build_tensor_info(scores_tensor)},
        method_name=v1.saved_model.signature_constants.CLASSIFY_METHOD_NAME,
    )


def write_half_plus(base_path: str, b: float = 2.0, version_dir: str = VERSION_DIR, tflite: bool = False) -> str:
    """``<base_path>/<version_dir>/``: half_plus_two (``b=2``) or half_plus_three (``b=3``); returns the version dir."""
    v1 = tf.compat.v1
    export_dir = os.path.join(base_path, version_dir)
    builder = v1.saved_model.builder.SavedModelBuilder(export_dir)
    with tf.Graph().as_default(), v1.Session() as sess:
        a = v1.Variable(0.5, name="a")
        b_var = v1.Variable(b, name="b")
        c = v1.Variable(3.0, name="c")
        serialized_tf_example = v1.placeholder(tf.string, name="tf_example")
        features = {"x": v1.FixedLenFeature([1], dtype=tf.float32),
                    "x2": v1.FixedLenFeature([1], dtype=tf.float32, default_value=[0.0])}
        parsed = v1.parse_example(serialized_tf_example, features)
        for value in parsed.values():  # [-1, 1], as in the checked-in testdata model (TF 2.16 infers unknown
            value.set_shape([None, 1])  # rank from an unknown-rank placeholder; the TF that wrote it did not)
        x = tf.identity(parsed["x"], name="x")
        y = tf.add(tf.multiply(a, x), b_var, name="y")
        y2 = tf.add(tf.multiply(a, x), c, name="y2")
        x2 = tf.identity(parsed["x2"], name="x2")
        y3 = tf.add(tf.multiply(a, x2), c, name="y3")
        predict = v1.saved_model.signature_def_utils.build_signature_def(
            inputs={"x": v1.saved_model.utils.build_tensor_info(x)},
            outputs={"y": v1.saved_model.utils.build_tensor_info(y)},
            method_name=v1.saved_model.signature_constants.PREDICT_METHOD_NAME,
        )
        signatures = {
            "regress_x_to_y": _regression_signature(serialized_tf_example, y),
            "regress_x_to_y2": _regression_signature(serialized_tf_example, y2),
            "regress_x2_to_y3": _regression_signature(x2, y3),
            "classify_x_to_y": _classification_signature(serialized_tf_example, y),
            v1.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY: predict,
        }
        sess.run(v1.global_variables_initializer())
        builder.add_meta_graph_and_variables(sess, [v1.saved_model.tag_constants.SERVING], signature_def_map=signatures)
        builder.save()
    if tflite:
        _write_tflite(export_dir, b)
    return export_dir


def _write_tflite(export_dir: str, b: float) -> None:
    """``model.tflite`` computing y = 0.5 * x + b on a float [1, 1] input (TF Serving's
    saved_model_half_plus_two_tflite): without SignatureDefs, so its tensor names ``x`` and ``y`` are
    the signature, as in the file the generator's ``as_tflite`` writes."""
    v1 = tf.compat.v1
    with tf.Graph().as_default(), v1.Session() as sess:
        x = v1.placeholder(tf.float32, shape=[1, 1], name="x")
        y = tf.add(tf.multiply(0.5, x), b, name="y")
        content = v1.lite.TFLiteConverter.from_session(sess, [x], [y]).convert()
    with tf.io.gfile.GFile(os.path.join(export_dir, "model.tflite"), "wb") as f:
        f.write(content)


def write_tflite_with_signature(base_path: str, version_dir: str = VERSION_DIR) -> str:
    """saved_model_half_plus_two_tflite_with_sigdef: a ``serving_default`` SignatureDef in the file
    with input key ``x`` and output key ``y`` (the tensors behind them are named by the converter)."""

    class HalfPlusTwo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 1], tf.float32)])
        def __call__(self, x):
            return {"y": 0.5 * x + 2.0}

    module = HalfPlusTwo()
    concrete = module.__call__.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    content = converter.convert()
    export_dir = os.path.join(base_path, version_dir)
    tf.io.gfile.makedirs(export_dir)
    with tf.io.gfile.GFile(os.path.join(export_dir, "model.tflite"), "wb") as f:
        f.write(content)
    return export_dir


def example(x: float, x2: float | None = None) -> tf.train.Example:
    """A tf.Example with float feature ``x`` (and ``x2``)."""
    features = {"x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))}
    if x2 is not None:
        features["x2"] = tf.train.Feature(float_list=tf.train.FloatList(value=[x2]))
    return tf.train.Example(features=tf.train.Features(feature=features))


def write_tf2_half_plus_two(base_path: str, version_dir: str = VERSION_DIR) -> str:
    """The TF2 half_plus_two: ``tf.saved_model.save`` signatures, all with the *predict* method
    name (TF2 writes no other), keyed as TF Serving's Classify/Regress expect them."""

    class HalfPlusTwo(tf.Module):
        def _y(self, serialized):
            x = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]
            return 0.5 * x + 2.0

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def classify(self, inputs):
            return {"scores": self._y(inputs)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def regress(self, inputs):
            return {"outputs": self._y(inputs)}

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32)])
        def predict(self, x):
            return {"y": 0.5 * x + 2.0}

    module = HalfPlusTwo()
    export_dir = os.path.join(base_path, version_dir)
    tf.saved_model.save(module, export_dir, signatures={"classify_x_to_y": module.classify, "regress_x_to_y": module.regress,
                                                        "serving_default": module.predict})
    return export_dir


def write_checkpoint_function(base_path: str) -> str:
    """test_tf_saved_model_save: a tf.train.Checkpoint's function on an unknown-rank input, y = 3 * 2 * x."""
    root = tf.train.Checkpoint()
    root.v1, root.v2 = tf.Variable(3.0), tf.Variable(2.0)
    root.f = tf.function(lambda x: {"y": root.v1 * root.v2 * x})
    export_dir = os.path.join(base_path, VERSION_DIR)
    tf.saved_model.save(root, export_dir, root.f.get_concrete_function(tf.TensorSpec(None, tf.float32)))
    return export_dir


def write_two_signatures(base_path: str) -> str:
    """test_tf_saved_model_save_multiple_signatures: scalar outputs 1 (serving_default) and 2 (custom_signature_key)."""
    root = tf.train.Checkpoint()
    root.f = tf.function(lambda x: {"y": 1.0}, input_signature=[tf.TensorSpec(None, tf.float32)])
    root.g = tf.function(lambda x: {"y": 2.0}, input_signature=[tf.TensorSpec(None, tf.float32)])
    export_dir = os.path.join(base_path, VERSION_DIR)
    tf.saved_model.save(root, export_dir, signatures={"serving_default": root.f, "custom_signature_key": root.g})
    return export_dir


def write_keras_sequential(base_path: str) -> str:
    """test_sequential_keras_saved_model_save: Input ``x`` (shape (1,)) -> identity Lambda ``y``, saved
    with tf.saved_model.save (Keras 2, as everywhere in this project)."""
    import tf_keras as keras

    model = keras.models.Sequential([keras.layers.Input(dtype="float32", shape=(1,), name="x"),
                                     keras.layers.Lambda(lambda x: x, name="y")])
    export_dir = os.path.join(base_path, VERSION_DIR)
    tf.saved_model.save(model, export_dir)
    return export_dir


# test_distrat_sequential_keras_saved_model_save, run in a fresh process: logical CPUs must be set
# before TensorFlow initialises its devices.
DISTRIBUTED_KERAS_SCRIPT = """
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
import tf_keras as keras
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
with tf.distribute.MirroredStrategy(devices=("/cpu:0", "/cpu:1")).scope():
    model = keras.models.Sequential([
        keras.layers.Input(dtype="float32", shape=(1,), name="x"),
        keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros"),
        keras.layers.Lambda(lambda x: x, name="y")])
tf.saved_model.save(model, os.path.join(sys.argv[1], "00000123"))
"""


def write_tf_text_model(base_path: str, version_dir: str = "01") -> str:
    """test_tf_text: y = x + 1 with control dependencies on TF Text kernels, which a server must have
    registered (``import tensorflow_text``) to load it; version folder ``01`` (version 1)."""
    import tensorflow_text as tf_text

    class TfTextOps(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1], tf.float32, name="x")])
        def __call__(self, x):
            normalized = tf_text.normalize_utf8(["Ünïcödé text"], "NFKC")
            tokens = tf_text.WhitespaceTokenizer().tokenize(normalized)
            with tf.control_dependencies([normalized, tokens.flat_values]):
                return {"y": tf.add(x, [1.0])}

    module = TfTextOps()
    export_dir = os.path.join(base_path, version_dir)
    tf.saved_model.save(module, export_dir, module.__call__.get_concrete_function())
    return export_dir


def predict_x_request(model: str = "default", signature: str = "serving_default") -> predict_pb2.PredictRequest:
    """Predict x = [2.0] on a half_plus model (its signatures declare x as [-1, 1])."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    request.inputs["x"].dtype = tf.float32.as_datatype_enum
    request.inputs["x"].float_val.append(2.0)
    request.inputs["x"].tensor_shape.dim.add().size = 1  # [1], on a signature declaring [-1, 1]
    return request
