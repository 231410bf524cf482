"""The API's error answers, with the operation that holds a busy VM in a "busy" one."""

from rest_framework.response import Response

from core.api import errors
from core.errors import Busy
from operations.api.serializers import OperationSerializer


def exception_handler(exc, context):
    if isinstance(exc, Busy) and exc.operation is not None:
        operation = OperationSerializer(exc.operation, context=context).data
        return Response(errors.error_body("busy", exc.message, operation=operation), status=409)
    return errors.exception_handler(exc, context)
