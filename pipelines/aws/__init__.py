"""The AWS side: the Lambda handler (the state machine's tasks, the triggers, the HTTP API), the job
store (DynamoDB + EventBridge), the Step Functions definition and the deployment's environment
contract. The engine does not import it."""
