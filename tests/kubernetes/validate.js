// Reads Kubernetes objects (a JSON array) on stdin and validates each KEDA one against KEDA's CRD
// schema (@kubernetes-models/keda); prints one line per object, "ok <kind>" or "invalid <kind>: ...".
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { ScaledJob } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledJob";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";

const MODELS = { ScaledObject, ScaledJob, TriggerAuthentication };
let input = "";
for await (const chunk of process.stdin) input += chunk;
let failed = false;
for (const object of JSON.parse(input)) {
  const Model = MODELS[object.kind];
  if (!Model) {
    console.log(`invalid ${object.kind}: not a KEDA kind this checks`);
    failed = true;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`ok ${object.kind}`);
  } catch (error) {
    console.log(`invalid ${object.kind}: ${error.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
