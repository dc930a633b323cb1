"""vigil-sdk: emit events from a model service to Vigil.

from vigil_sdk import Emitter
vigil = Emitter(api_url="http://vigil:8000", token="...")
vigil.inference(model_id="mammo-screen", model_version="2.3.0", ...)
"""

from vigil_sdk.emitter import AsyncEmitter, Emitter, InvalidEvents

__all__ = ["AsyncEmitter", "Emitter", "InvalidEvents"]
